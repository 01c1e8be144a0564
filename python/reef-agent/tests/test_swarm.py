"""Swarm auctions (docs/swarm.md) spoken on the raw protocol from Python: a Python agent bids
and answers, `reef ask` and a raw Python poster ask and pay with EIP-712 vouchers, and every
frame and REST body the node sent or received is checked against docs/schemas/."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import DEV_KEYS, REPO, Devnet, Node, reef_bin, rest_login
from eth_account import Account
from eth_account.messages import encode_defunct
from test_conformance import check
from websockets.asyncio.client import connect

from reef_agent import http

PRICE = 5 * 10**14  # the Python agent's bid: 0.0005 ETH
SKILL = "py-swarm"


class Conn:
    """One logged-in WebSocket, every frame traced."""

    def __init__(self, ws: Any, trace: list[tuple[str, Any]]) -> None:
        self.ws = ws
        self.trace = trace
        self.ids = itertools.count(1)

    async def send(self, frame: dict[str, Any]) -> int:
        frame = {**frame, "req_id": next(self.ids)}
        self.trace.append(("out", frame))
        await self.ws.send(json.dumps(frame))
        return int(frame["req_id"])

    async def recv(self) -> dict[str, Any]:
        f = json.loads(await self.ws.recv())
        self.trace.append(("in", f))
        return f

    async def reply(self, req_id: int) -> dict[str, Any]:
        while True:
            f = await self.recv()
            if f.get("req_id") == req_id:
                return f


async def login(url: str, key: str, trace: list[tuple[str, Any]]) -> tuple[Any, Conn]:
    ws = await connect(url)
    conn = Conn(ws, trace)
    challenge = await conn.recv()
    sig = Account.sign_message(encode_defunct(text=challenge["message"]), private_key=key)
    auth = {
        "type": "auth",
        "address": Account.from_key(key).address,
        "signature": "0x" + bytes(sig.signature).hex(),
    }
    trace.append(("out", auth))
    await ws.send(json.dumps(auth))
    welcome = await conn.recv()
    assert welcome["type"] == "welcome", welcome
    return ws, conn


def sign_voucher(key: str, chain_id: int, contract: str, voucher: dict[str, Any]) -> str:
    signed = Account.sign_typed_data(
        key,
        {
            "name": "ReefPaymentChannel",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        {
            "Voucher": [
                {"name": "channelId", "type": "uint256"},
                {"name": "payer", "type": "address"},
                {"name": "payee", "type": "address"},
                {"name": "cumulativeAmount", "type": "uint256"},
            ]
        },
        {
            "channelId": int(voucher["channelId"], 0),
            "payer": voucher["payer"],
            "payee": voucher["payee"],
            "cumulativeAmount": int(voucher["cumulativeAmount"], 0),
        },
    )
    return "0x" + bytes(signed.signature).hex()


def answer_of(question: str) -> Any:
    m = re.search(r"(\d+)\s*\*\s*(\d+)", question)
    return int(m.group(1)) * int(m.group(2)) if m else "?"


async def python_agent(conn: Conn, paid: list[dict[str, Any]]) -> None:
    """Bids PRICE on every query, answers awards, keeps the vouchers it is handed."""
    while True:
        f = await conn.recv()
        if f["type"] == "swarm_query":
            await conn.send({"type": "swarm_bid", "query_id": f["query_id"], "price": str(PRICE)})
        elif f["type"] == "swarm_award":
            answer = answer_of(f["question"])
            await conn.send({"type": "swarm_answer", "query_id": f["query_id"], "answer": answer})
        elif f["type"] == "swarm_paid":
            paid.append(f)


async def _scenario(devnet: Devnet, node: Node) -> tuple[list[tuple[str, Any]], list[Any]]:
    trace: list[tuple[str, Any]] = []
    rest: list[tuple[str, Any]] = []
    agent_key = DEV_KEYS[2]
    agent = Account.from_key(agent_key).address
    ws, conn = await login(node.ws, agent_key, trace)
    rid = await conn.send({"type": "swarm_listen", "skills": [SKILL]})
    ok = await conn.reply(rid)
    assert ok["type"] == "ok" and ok["result"]["skills"] == 1, ok
    paid: list[dict[str, Any]] = []
    loop = asyncio.create_task(python_agent(conn, paid))
    state = Path(tempfile.mkdtemp(prefix="reef-py-swarm-"))
    try:
        # 1. `reef ask` (Rust) pays the Python agent; it opens the channel.
        proc = await asyncio.create_subprocess_exec(
            reef_bin(),
            "ask",
            "What is 6 * 7?",
            "--skill",
            SKILL,
            "--max-price",
            "0.001",
            "--token",
            "eth",
            "--window",
            "100ms",
            "--deposit",
            "0.01",
            "--state-dir",
            str(state),
            "--node",
            node.ws,
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
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        asked = json.loads(out)
        assert asked["status"] == "paid" and asked["answer"] == 42, asked
        assert asked["winner"].lower() == agent.lower(), asked

        # 2. A raw Python poster on the same channel: ask, a wrong voucher, the right one. A
        # cheaper silent bidder wins first, is cancelled, and the Python agent takes over.
        silent_ws, silent = await login(node.ws, "0x" + Account.create().key.hex(), trace)
        rid = await silent.send({"type": "swarm_listen", "skills": [SKILL]})
        assert (await silent.reply(rid))["type"] == "ok"

        async def silent_bidder() -> None:
            while True:
                f = await silent.recv()
                if f["type"] == "swarm_query":
                    bid = {"type": "swarm_bid", "query_id": f["query_id"], "price": str(PRICE - 1)}
                    await silent.send(bid)
                elif f["type"] == "swarm_cancelled":
                    cancelled.append(f)

        cancelled: list[dict[str, Any]] = []
        silent_loop = asyncio.create_task(silent_bidder())
        poster_key = DEV_KEYS[0]
        poster = Account.from_key(poster_key).address
        pws, pconn = await login(node.ws, poster_key, trace)
        channels = json.loads((state / "channels.json").read_text())["channels"]
        ch = next(c for k, c in channels.items() if k.startswith(agent.lower()))
        rid = await pconn.send(
            {
                "type": "swarm_ask",
                "question": "What is 12 * 12?",
                "skill": SKILL,
                "max_price": str(10**15),
                "window_ms": 80,
                "answer_ms": 300,
            }
        )
        invoice = (await pconn.reply(rid))["result"]
        assert invoice["status"] == "invoice", invoice
        assert invoice["awards"] == 2 and invoice["winner"].lower() == agent.lower(), invoice
        for _ in range(100):
            if cancelled:
                break
            await asyncio.sleep(0.05)
        assert cancelled and cancelled[0]["code"] == "no_answer", cancelled
        silent_loop.cancel()
        await silent_ws.close()
        chain_id, contract = 31337, devnet.deployment["paymentChannel"]
        cumulative = int(ch["cumulative"], 0) + int(invoice["price"], 0)

        def voucher(amount: int) -> dict[str, Any]:
            return {
                "channelId": ch["channel_id"],
                "payer": poster,
                "payee": invoice["winner"],
                "cumulativeAmount": hex(amount),
            }

        bad = voucher(cumulative + 1)
        rid = await pconn.send(
            {
                "type": "swarm_pay",
                "query_id": invoice["query_id"],
                "voucher": bad,
                "signature": sign_voucher(poster_key, chain_id, contract, bad),
            }
        )
        refused = (await pconn.reply(rid))["result"]
        assert refused["status"] == "refused" and refused["code"] == "wrong_amount", refused
        assert "answer" not in refused
        assert int(refused["expected"], 0) == cumulative, refused
        good = voucher(cumulative)
        rid = await pconn.send(
            {
                "type": "swarm_pay",
                "query_id": invoice["query_id"],
                "voucher": good,
                "signature": sign_voucher(poster_key, chain_id, contract, good),
            }
        )
        got = (await pconn.reply(rid))["result"]
        assert got["status"] == "paid" and got["answer"] == 144, got

        # 3. REST: the same exchange with a bearer token, and a skill nobody listens for.
        token = await rest_login(node.http, poster_key)
        auth = {"Authorization": f"Bearer {token}"}
        body = {"question": "What is 3 * 5?", "skill": SKILL, "max_price": str(10**15)}
        rest.append(("swarm.ask.json", body))
        inv = await http.request("POST", f"{node.http}/v1/swarm/ask", body, headers=auth)
        rest.append(("swarm.ask_outcome.json", inv))
        assert inv["status"] == "invoice", inv
        pay = {
            "query_id": inv["query_id"],
            "voucher": voucher(cumulative + int(inv["price"], 0)),
        }
        pay["signature"] = sign_voucher(poster_key, chain_id, contract, pay["voucher"])
        rest.append(("swarm.pay.json", pay))
        out = await http.request("POST", f"{node.http}/v1/swarm/pay", pay, headers=auth)
        rest.append(("swarm.pay_outcome.json", out))
        assert out["status"] == "paid" and out["answer"] == 15, out
        none = await http.request(
            "POST",
            f"{node.http}/v1/swarm/ask",
            {"question": "Anyone?", "skill": "nobody-listens", "max_price": "1"},
            headers=auth,
        )
        rest.append(("swarm.ask_outcome.json", none))
        assert none["status"] == "failed" and none["code"] == "no_agents", none

        async def three_paid() -> bool:
            return len(paid) >= 3

        for _ in range(100):
            if await three_paid():
                break
            await asyncio.sleep(0.05)
        assert len(paid) == 3, paid
        # The vouchers the agent was handed are signed by the poster (checked as an agent would).
        from eth_account.messages import encode_typed_data

        for p in paid:
            v = p["voucher"]
            msg = encode_typed_data(
                {
                    "name": "ReefPaymentChannel",
                    "version": "1",
                    "chainId": chain_id,
                    "verifyingContract": contract,
                },
                {
                    "Voucher": [
                        {"name": "channelId", "type": "uint256"},
                        {"name": "payer", "type": "address"},
                        {"name": "payee", "type": "address"},
                        {"name": "cumulativeAmount", "type": "uint256"},
                    ]
                },
                {
                    "channelId": int(v["channelId"], 0),
                    "payer": v["payer"],
                    "payee": v["payee"],
                    "cumulativeAmount": int(v["cumulativeAmount"], 0),
                },
            )
            assert Account.recover_message(msg, signature=p["signature"]) == poster
        await pws.close()
    finally:
        loop.cancel()
        await ws.close()
    return trace, rest


def test_swarm_frames_and_bodies_match_the_schemas(devnet: Devnet, node: Node) -> None:
    trace, rest = asyncio.run(_scenario(devnet, node))
    used: Counter[str] = Counter()
    sent: dict[Any, dict[str, Any]] = {}
    for direction, f in trace:
        if direction == "out":
            check(f"client.{f['type']}.json", f, used)
            if "req_id" in f:
                sent[f["req_id"]] = f
        else:
            check(f"server.{f['type']}.json", f, used)
            if f["type"] == "ok" and f.get("req_id") in sent:
                kind = sent[f["req_id"]]["type"]
                if kind == "swarm_ask":
                    check("swarm.ask_outcome.json", f["result"], used)
                elif kind == "swarm_pay":
                    check("swarm.pay_outcome.json", f["result"], used)
    for name, body in rest:
        check(name, body, used)
    for name in [
        "client.swarm_listen.json",
        "client.swarm_ask.json",
        "client.swarm_bid.json",
        "client.swarm_answer.json",
        "client.swarm_pay.json",
        "server.swarm_query.json",
        "server.swarm_award.json",
        "server.swarm_paid.json",
        "swarm.ask.json",
        "swarm.ask_outcome.json",
        "swarm.pay.json",
        "swarm.pay_outcome.json",
    ]:
        assert used[name] > 0, f"{name} was never checked"
