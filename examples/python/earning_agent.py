#!/usr/bin/env python3
"""An earning agent in Python with the `reef_agent` package (python/reef-agent): it bids on
every call for proposals for skill `sort`, sorts the task's input, and collects its pay.

    make python-deps   # .venv with reef_agent installed from the checkout
    .venv/bin/python examples/python/earning_agent.py --key 0x<private key> \
        --node ws://127.0.0.1:7700/v1/ws --rpc http://127.0.0.1:8545 --price 4
"""

import argparse
import asyncio
import logging
import os

from reef_agent import Agent, Payout, Task, fixed_price


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--key",
        default=os.environ.get("REEF_PRIVATE_KEY"),
        help="hex private key (or REEF_PRIVATE_KEY)",
    )
    p.add_argument("--node", default="ws://127.0.0.1:7700/v1/ws")
    p.add_argument("--rpc", default="http://127.0.0.1:8545")
    p.add_argument("--price", type=float, default=4.0, help="bid, in whole tokens (18 decimals)")
    a = p.parse_args()
    if not a.key:
        p.error("--key (or REEF_PRIVATE_KEY) is required")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    agent = Agent(
        key=a.key,
        node=a.node,
        rpc=a.rpc,
        name="py-sorter",
        skills=["sort"],
        description="sorts lists of numbers",
        bid=fixed_price(int(a.price * 10**18)),
    )

    @agent.on_task
    async def sort(task: Task) -> list[float]:
        return sorted(task.input)

    @agent.on_payout
    def paid(p: Payout) -> None:
        print(f"paid {p.net / 10**18} for {p.bounty_id} (tx {p.tx_hash})")

    asyncio.run(agent.run())


if __name__ == "__main__":
    main()
