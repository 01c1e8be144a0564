"""Real components for the end-to-end tests: anvil with Reef deployed (`reef devnet up` on a
free port), a `reef node` with the marketplace, and helpers to run the `reef` CLI.

The `reef` binary is `$REEF_BIN`, else `target/debug/reef` of the checkout (`cargo build`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
#: anvil's first development keys (public test keys, funded on every anvil).
DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
]


def reef_bin() -> str:
    path = os.environ.get("REEF_BIN") or str(REPO / "target/debug/reef")
    if not Path(path).is_file():
        pytest.fail(f"{path} not found: run `cargo build` first (or set REEF_BIN)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reef(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REEF_PRIVATE_KEY", "REEF_RPC_URL")}
    env.setdefault("RUST_LOG", "warn")
    return subprocess.run(
        [reef_bin(), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Devnet:
    rpc: str
    dir: Path
    deployment: dict[str, Any]

    @property
    def deployments(self) -> Path:
        return self.dir / "deployments"


@dataclass
class Node:
    http: str
    ws: str


@pytest.fixture(scope="session")
def devnet() -> Iterator[Devnet]:
    d = Path(tempfile.mkdtemp(prefix="reef-py-"))
    port = free_port()
    common = ["--state-dir", str(d / "devnet"), "--deployments", str(d / "deployments")]
    up = reef("devnet", "up", "--port", str(port), *common, "--json")
    if up.returncode != 0:
        pytest.fail(f"reef devnet up failed:\n{up.stderr}")
    try:
        status = json.loads(up.stdout)
        yield Devnet(rpc=status["rpcUrl"], dir=d, deployment=status["deployment"])
    finally:
        reef("devnet", "down", *common)
        shutil.rmtree(d, ignore_errors=True)


@contextmanager
def running_node(devnet: Devnet, node_id: str, *extra: str) -> Iterator[Node]:
    """A `reef node` with the marketplace on `devnet` (its own SQLite database), once its
    marketplace answers; stopped on exit."""
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    db = "node.db" if node_id == "py-test" else f"{node_id}.db"
    proc = subprocess.Popen(
        [
            reef_bin(),
            "node",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--node-id",
            node_id,
            "--database-url",
            f"sqlite://{devnet.dir}/{db}",
            "--rpc-url",
            devnet.rpc,
            "--market-dev-account",
            "5",
            "--award-grace-secs",
            "30",
            "--deployments",
            str(devnet.deployments),
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            pytest.fail("reef node exited before printing its address")
        listen = json.loads(line)["listen"]
        http = f"http://{listen}"
        deadline = time.monotonic() + 30
        while True:  # the marketplace answers once its chain view is up
            try:
                with urllib.request.urlopen(f"{http}/v1/market/info", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the node's marketplace never answered /v1/market/info")
            time.sleep(0.1)
        yield Node(http=http, ws=f"ws://{listen}/v1/ws")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def node(devnet: Devnet) -> Iterator[Node]:
    with running_node(devnet, "py-test") as n:
        yield n


# -- one bounty's whole lifecycle with the Python agent, shared by the end-to-end tests -------

PRICE = 4 * 10**18  # the agent's bid: 4 rUSD of the 5 rUSD reward


async def rest_login(http_base: str, key: str) -> str:
    """A bearer token for `key` (EIP-191 challenge login)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from reef_agent import http

    ch = await http.request("POST", f"{http_base}/v1/auth/challenge", {})
    sig = Account.sign_message(encode_defunct(text=ch["message"]), private_key=key)
    out = await http.request(
        "POST",
        f"{http_base}/v1/auth/login",
        {
            "address": Account.from_key(key).address,
            "nonce": ch["nonce"],
            "signature": "0x" + bytes(sig.signature).hex(),
        },
    )
    return str(out["token"])


async def poll(what: str, check: Any, timeout: float = 60.0) -> Any:
    """Awaits `check()` until it returns something truthy, or fails at the deadline."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def _lifecycle(devnet: Devnet, node: Node) -> dict[str, Any]:
    import asyncio
    import copy
    import secrets

    from eth_account import Account
    from eth_utils import keccak

    from reef_agent import Agent, Task, fixed_price, http, result_hash

    frames: list[tuple[str, Any]] = []
    rest: list[tuple[str, Any]] = []  # (schema, body) of REST bodies to check

    def trace(direction: str, frame: Any) -> None:
        frames.append((direction, copy.deepcopy(frame)))

    agent = Agent(
        key=DEV_KEYS[1],
        node=node.ws,
        rpc=devnet.rpc,
        name="py-sorter",
        description="sorts numbers (reef_agent test)",
        skills=["sort"],
        bid=fixed_price(PRICE),
        eta_secs=60,
        trace=trace,
    )
    tasks_seen: list[Task] = []

    @agent.on_task
    async def sort(task: Task) -> list[int]:
        tasks_seen.append(task)
        return sorted(task.input)

    token = devnet.deployment["testToken"]
    before = await agent.chain.token_balance(token, agent.address)
    runner = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.ready.wait(), 30)
        me = await http.request("GET", f"{node.http}/v1/agents/{agent.address}")
        assert me["online"] is True, me
        rest.append(("agent_info.json", me))
        post = await asyncio.create_subprocess_exec(
            reef_bin(),
            "bounty",
            "post",
            "Sort these numbers ascending",
            "--reward",
            "5",
            "--token",
            "test",
            "--node",
            node.http,
            "--skills",
            "sort",
            "--bid-window",
            "3s",
            "--deadline",
            "1h",
            "--input",
            "[5,3,9,1]",
            "--verify",
            "hash",
            "--expect",
            "[1,3,5,9]",
            "--approve",
            "--dev-account",
            "0",
            "--json",
            "--rpc-url",
            devnet.rpc,
            "--deployments",
            str(devnet.deployments),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(post.communicate(), 240)
        if post.returncode != 0:
            pytest.fail(f"reef bounty post failed ({post.returncode}):\n{err.decode()}")
        posted = json.loads(out)

        async def paid() -> bool:
            return bool(agent.payouts)

        await poll("the agent's payout", paid)
        after = await agent.chain.token_balance(token, agent.address)
        info = await http.request("GET", f"{node.http}/v1/market/info")
        rest.append(("market.info.json", info))
        bounty_id = agent.payouts[0].bounty_id

        # Reads: the bounty as the public and as its poster sees it, discovery, groups.
        rest.append(
            (
                "market.bounty_view.json",
                await http.request("GET", f"{node.http}/v1/market/bounties/{bounty_id}"),
            )
        )
        poster_token = await rest_login(node.http, DEV_KEYS[0])
        as_poster = await http.request(
            "GET",
            f"{node.http}/v1/market/bounties/{bounty_id}",
            headers={"authorization": f"Bearer {poster_token}"},
        )
        assert "winning_bid" in as_poster, as_poster
        rest.append(("market.bounty_view.json", as_poster))
        found = await http.request("POST", f"{node.http}/v1/discover", {"skills": ["sort"]})
        rest.extend(("agent_info.json", a) for a in found["agents"])
        # A ranked discovery: every hit explains its score (`ranking`, docs/discovery.md).
        found = await http.request(
            "POST", f"{node.http}/v1/discover", {"query": "put these numbers in order"}
        )
        assert found["agents"] and all("ranking" in a for a in found["agents"]), found
        rest.extend(("agent_info.json", a) for a in found["agents"])
        groups = await agent.rest("GET", "/v1/groups")
        rest.extend(("group_info.json", g) for g in groups["groups"])

        # Errors, one of each kind the agent can meet, all in the documented shape.
        async def error_of(coro: Any, want: tuple[int, str]) -> None:
            try:
                await coro
            except http.HttpError as e:
                assert (e.status, e.code) == want, (e.status, e.body)
                rest.append(("rest_error.json", e.body))
                return
            pytest.fail(f"expected {want}")

        last_bid = next(
            f["request"]
            for d, f in frames
            if d == "rest" and str(f.get("path", "")).endswith("/bids")
        )
        bids = f"/v1/market/bounties/{bounty_id}/bids"
        await error_of(agent.rest("POST", bids, last_bid), (409, "conflict"))
        await error_of(agent.rest("POST", bids, {"bid": {}}), (400, "bad_request"))
        await error_of(http.request("POST", node.http + bids, last_bid), (401, "unauthenticated"))
        await error_of(
            http.request("GET", f"{node.http}/v1/market/bounties/0x{'ee' * 32}"), (404, "not_found")
        )
        await error_of(
            agent.rest("POST", "/v1/agents", ["not", "a", "card"]), (400, "invalid_frame")
        )

        # A second bounty posted over REST (unfunded: its call goes out, nobody pays), for
        # the post request and answer and a second call for proposals.
        poster2 = Account.from_key(DEV_KEYS[2]).address
        description = "Sort one number"
        record = {
            "poster": poster2, "token": token, "amount": "1000", "price": "0",
            "provider": "0x" + "00" * 20, "evaluator": info["evaluator"],
            "arbiter": "0x" + "00" * 20, "deadline": int(time.time()) + 3600,
            "reviewWindow": 3600, "challengeWindow": 0, "feeBps": info["fee_bps"], "mode": 0,
            "maxWinners": 0, "specHash": "0x" + keccak(text=description).hex(),
            "resultHash": "0x" + "00" * 32,
        }  # fmt: skip
        request = {
            "salt": "0x" + secrets.token_hex(32),
            "record": record,
            "description": description,
            "input": [1],
            "skills": ["sort"],
            "verify": {"mode": "hash", "expected": result_hash([1])},
            "bid_window_ms": 1000,
        }
        rest.append(("market.post_request.json", request))
        token2 = await rest_login(node.http, DEV_KEYS[2])
        answer = await http.request(
            "POST",
            f"{node.http}/v1/market/bounties",
            request,
            headers={"authorization": f"Bearer {token2}"},
        )
        rest.append(("market.post_answer.json", answer))

        async def second_cfp() -> bool:
            return any(
                d == "in"
                and f.get("type") == "message"
                and (f.get("body") or {}).get("bounty_id") == answer["id"]
                for d, f in frames
            )

        await poll("the second call for proposals", second_cfp)
    finally:
        agent.stop()
        await asyncio.wait_for(runner, 30)
    return {
        "posted": posted,
        "before": before,
        "after": after,
        "fee_bps": info["fee_bps"],
        "payouts": agent.payouts,
        "tasks": tasks_seen,
        "frames": frames,
        "rest": rest,
        "agent": agent.address,
        "evaluator": info["evaluator"],
    }


@pytest.fixture(scope="session")
def lifecycle(devnet: Devnet, node: Node) -> dict[str, Any]:
    """One bounty posted with `reef bounty post`, won, executed and collected by the Python
    agent; every frame and REST body it saw, and the balances around it."""
    import asyncio

    return asyncio.run(_lifecycle(devnet, node))
