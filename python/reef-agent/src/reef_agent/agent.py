"""The earning agent: log in, register a card, bid on calls for proposals, run tasks with an
async handler, deliver results, and collect payouts with `submitAndAttest`. Reconnects with
back-off. The protocol is docs/earning.md; this module follows it step by step."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from eth_account import Account
from eth_account.messages import encode_defunct

from . import http
from .chain import Chain, RpcError
from .eip712 import Domain, sign_bid, terms_hash

log = logging.getLogger("reef_agent")

MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Cfp:
    """A call for proposals (docs/earning.md, section 2)."""

    bounty_id: str
    record: dict[str, Any]
    description: str
    input: Any
    skills: list[str]
    verify: str
    bid_close_at: int
    bid_close_ms: int
    award_grace_secs: int
    chain_id: int
    escrow: str
    raw: dict[str, Any]

    @property
    def budget(self) -> int:
        """The most a bid may ask, in the token's smallest unit."""
        return int(self.record["amount"])

    @property
    def token(self) -> str:
        return str(self.record["token"])


@dataclass(frozen=True)
class Task:
    """A task assigned to this agent (docs/earning.md, section 4)."""

    bounty_id: str
    task_id: str
    group_id: str
    description: str
    input: Any
    record: dict[str, Any]
    verify: str


@dataclass(frozen=True)
class Payout:
    """A bounty this agent was paid for."""

    bounty_id: str
    tx_hash: str
    token: str
    net: int


#: A bid policy: the price to ask (smallest token unit) for a call, or None to not bid.
BidPolicy = Callable[[Cfp], int | Awaitable[int | None] | None]
Handler = Callable[[Task], Awaitable[Any]]
Trace = Callable[[str, Any], None]


def full_budget(cfp: Cfp) -> int:
    """The default bid policy: ask the whole budget."""
    return cfp.budget


def fixed_price(amount: int) -> BidPolicy:
    """Bid `amount` (smallest unit) on every call whose budget covers it."""

    def policy(cfp: Cfp) -> int | None:
        return amount if amount <= cfp.budget else None

    return policy


@dataclass
class _Conn:
    ws: Any
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)


class Agent:
    """An earning agent.

    >>> agent = Agent(key=KEY, node="ws://127.0.0.1:7700/v1/ws", rpc="http://127.0.0.1:8545",
    ...               name="sorter", skills=["sort"], bid=fixed_price(4 * 10**18))
    >>> @agent.on_task
    ... async def sort(task: Task) -> list[int]:
    ...     return sorted(task.input)
    >>> asyncio.run(agent.run())
    """

    def __init__(
        self,
        *,
        key: str,
        node: str,
        rpc: str,
        name: str,
        skills: list[str],
        description: str = "",
        bid: BidPolicy = full_budget,
        eta_secs: int = 0,
        price_hint: float | None = None,
        trace: Trace | None = None,
    ) -> None:
        if not skills:
            raise ValueError("an agent needs at least one skill (calls for proposals match skills)")
        try:
            self._key = key
            self.address: str = Account.from_key(key).address
        except Exception as e:
            why = type(e).__name__
            raise ValueError(f"key is not a valid secp256k1 private key ({why})") from None
        if not node.startswith(("ws://", "wss://")):
            raise ValueError(f"node must be a ws:// or wss:// URL (…/v1/ws), not {node!r}")
        self.node = node
        base = node.removesuffix("/").removesuffix("/v1/ws")
        self.http_base = "http" + base[2:]
        self.chain = Chain(rpc, key)
        self.card: dict[str, Any] = {"name": name, "description": description, "skills": skills}
        if price_hint is not None:
            self.card["price"] = price_hint
        self.skills = [s.lower() for s in skills]
        self.bid_policy = bid
        self.eta_secs = eta_secs
        self.trace = trace
        self.payouts: list[Payout] = []
        self._handler: Handler | None = None
        self._payout_cb: Callable[[Payout], Any] | None = None
        self._market: dict[str, Any] | None = None
        self._token: str | None = None
        self._ids = 0
        self._nonce_base = random.getrandbits(64) << 8
        self._nonce_next = 0
        self._cursors: dict[str, int] = {}
        self._handled: set[str] = set()
        self._outbox: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conn: _Conn | None = None
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    def __repr__(self) -> str:  # never show the key
        return f"Agent(address={self.address}, node={self.node!r})"

    # -- public API --------------------------------------------------------------------------

    def on_task(self, handler: Handler) -> Handler:
        """Registers the async task handler (usable as a decorator). Its return value (any
        JSON value) is the result; an exception reports the task as failed."""
        if not inspect.iscoroutinefunction(handler):
            raise TypeError("the task handler must be an `async def` function")
        self._handler = handler
        return handler

    def on_payout(self, callback: Callable[[Payout], Any]) -> Callable[[Payout], Any]:
        """Registers a callback called with each Payout (usable as a decorator)."""
        self._payout_cb = callback
        return callback

    def stop(self) -> None:
        """Makes `run` return (after closing the connection)."""
        self._stop.set()

    async def run(self) -> None:
        """Connects and serves until `stop()`; reconnects after every drop with back-off
        (0.25 s doubling to 5 s)."""
        if self._handler is None:
            raise RuntimeError("register a task handler with @agent.on_task first")
        backoff = 0.25
        while not self._stop.is_set():
            try:
                await self._session()
                backoff = 0.25
            except (OSError, websockets.exceptions.WebSocketException, http.Unreachable) as e:
                log.warning(
                    "connection to %s lost (%s); reconnecting in %.2f s", self.node, e, backoff
                )
            except LoginRefused as e:
                raise RuntimeError(f"the node refused the login: {e}") from None
            self.ready.clear()
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, MAX_BACKOFF)
        for t in list(self._tasks):
            t.cancel()

    # -- the WebSocket session ---------------------------------------------------------------

    async def _session(self) -> None:
        async with websockets.connect(self.node, max_size=1 << 20) as ws:
            conn = _Conn(ws)
            challenge = json.loads(await ws.recv())
            self._trace("in", challenge)
            if challenge.get("type") != "challenge":
                raise LoginRefused(f"expected a challenge, got {challenge}")
            sig = Account.sign_message(
                encode_defunct(text=challenge["message"]), private_key=self._key
            )
            await self._send_raw(
                ws,
                {
                    "type": "auth",
                    "address": self.address,
                    "signature": "0x" + bytes(sig.signature).hex(),
                },
            )
            welcome = json.loads(await ws.recv())
            self._trace("in", welcome)
            if welcome.get("type") != "welcome":
                raise LoginRefused(f"{welcome.get('code')}: {welcome.get('message')}")
            reader = asyncio.create_task(self._read(conn))
            stopper = asyncio.create_task(self._stop.wait())
            self._conn = conn
            try:
                await self._start(conn)
                self.ready.set()
                done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    reader.result()  # raises what ended the connection
            finally:
                self._conn = None
                reader.cancel()
                stopper.cancel()
                for f in conn.pending.values():
                    if not f.done():
                        f.set_exception(ConnectionError("connection closed"))

    async def _start(self, conn: _Conn) -> None:
        info = await self.request(conn, {"type": "register", "card": self.card})
        log.info("registered %s on %s", info.get("address"), self.node)
        if self._market is None:
            self._market = await http.request("GET", f"{self.http_base}/v1/market/info")
            self._trace("rest", {"path": "/v1/market/info", "answer": self._market})
            if await self.chain.chain_id() != self._market["deployment"]["chainId"]:
                raise RuntimeError("the node settles on another chain than the RPC serves")
        groups = await self.request(conn, {"type": "list_groups"})
        for g in groups["groups"]:
            await self._join(conn, g["group_id"])
        # Results the last connection could not deliver (idempotent by msg_id).
        for frame in list(self._outbox.values()):
            self._spawn(self._deliver(frame))

    async def _join(self, conn: _Conn, group_id: str) -> None:
        since = self._cursors.get(group_id, 0)
        await self.request(conn, {"type": "join", "group_id": group_id, "since_seq": since})

    async def _read(self, conn: _Conn) -> None:
        async for raw in conn.ws:
            frame = json.loads(raw)
            self._trace("in", frame)
            kind = frame.get("type")
            req_id = frame.get("req_id")
            if kind in ("ok", "error", "ack", "pong") and req_id in conn.pending:
                fut = conn.pending.pop(req_id)
                if not fut.done():
                    fut.set_result(frame)
            elif kind == "invited":
                # `joined_since_seq` set: the node already joined this connection (a group
                # created with us in it), so its messages arrive without a join.
                if frame.get("joined_since_seq") is None:
                    self._spawn(self._join(conn, frame["group_id"]))
            elif kind == "message":
                self._on_message(frame)
            elif kind == "error":
                log.warning("node error: %s: %s", frame.get("code"), frame.get("message"))

    async def request(self, conn: _Conn, frame: dict[str, Any]) -> dict[str, Any]:
        """Sends a request frame; its `ok` result (raises NodeError on an `error` reply)."""
        self._ids += 1
        req_id = self._ids
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        conn.pending[req_id] = fut
        await self._send_raw(conn.ws, dict(frame, req_id=req_id, v=1))
        reply = await asyncio.wait_for(fut, 30)
        if reply["type"] == "error":
            raise NodeError(f"{frame['type']}: {reply.get('code')}: {reply.get('message')}")
        return reply.get("result", reply)

    async def _send_raw(self, ws: Any, frame: dict[str, Any]) -> None:
        self._trace("out", frame)
        await ws.send(json.dumps(frame))

    def _trace(self, direction: str, frame: Any) -> None:
        if self.trace is not None:
            self.trace(direction, frame)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.warning("%s", t.exception())

        task.add_done_callback(done)

    # -- marketplace messages ----------------------------------------------------------------

    def _on_message(self, m: dict[str, Any]) -> None:
        group, seq = m["group_id"], int(m.get("seq", 0))
        self._cursors[group] = max(self._cursors.get(group, 0), seq)
        market = self._market or {}
        if str(m.get("sender_id", "")).lower() != str(market.get("evaluator", "")).lower():
            return  # only the node's market identity speaks for the marketplace
        key = f"{group}/{m['msg_id']}"
        if key in self._handled:
            return
        self._handled.add(key)
        body = m.get("body") or {}
        kind = body.get("kind") if isinstance(body, dict) else None
        if kind == "cfp":
            self._spawn(self._bid(body))
        elif m.get("state") == "task_assignment":
            td = m.get("task_desc") or {}
            if str(td.get("assignee", "")).lower() == self.address.lower():
                self._spawn(self._execute(group, td))
        elif kind == "verdict":
            self._spawn(self._collect(body))

    async def _bid(self, body: dict[str, Any]) -> None:
        market = self._market or {}
        try:
            cfp = Cfp(
                bounty_id=body["bounty_id"],
                record=body["record"],
                description=body["description"],
                input=body.get("input"),
                skills=list(body.get("skills") or []),
                verify=body["verify"],
                bid_close_at=int(body["bid_close_at"]),
                bid_close_ms=int(body["bid_close_ms"]),
                award_grace_secs=int(body["award_grace_secs"]),
                chain_id=int(body["chain_id"]),
                escrow=body["escrow"],
                raw=body,
            )
        except (KeyError, TypeError, ValueError) as e:
            log.warning("malformed call for proposals (%s): %s", e, body)
            return
        why = self._refuse(cfp, market)
        if why:
            log.info("no bid on %s: %s", cfp.bounty_id, why)
            return
        price = self.bid_policy(cfp)
        if inspect.isawaitable(price):
            price = await price
        if price is None:
            log.info("no bid on %s: the bid policy declined", cfp.bounty_id)
            return
        if not 1 <= int(price) <= cfp.budget:
            log.warning(
                "no bid on %s: price %s is outside 1..=%s", cfp.bounty_id, price, cfp.budget
            )
            return
        nonce = self._nonce_base + self._nonce_next
        self._nonce_next += 1
        bid = {
            "bountyId": cfp.bounty_id,
            "termsHash": terms_hash(cfp.record),
            "bidder": self.address,
            "amount": str(int(price)),
            "deadline": int(cfp.record["deadline"]),
            "eta": self.eta_secs,
            "bond": "0",
            "nonce": str(nonce),
        }
        signature = sign_bid(self._key, Domain(cfp.chain_id, cfp.escrow), bid)
        path = f"/v1/market/bounties/{cfp.bounty_id}/bids"
        answer = await self.rest("POST", path, {"bid": bid, "signature": signature})
        log.info("bid %s on %s (%s)", price, cfp.bounty_id, answer)

    def _refuse(self, cfp: Cfp, market: dict[str, Any]) -> str | None:
        """Why this agent will not bid on `cfp` (None: it may)."""
        dep = market.get("deployment", {})
        if (
            cfp.chain_id != dep.get("chainId")
            or cfp.escrow.lower() != str(dep.get("bountyEscrow", "")).lower()
        ):
            return "the call names another chain or escrow than the node's"
        if terms_hash(cfp.record) != str(cfp.raw.get("terms_hash", "")).lower():
            return "terms_hash does not commit to the record"
        missing = [s for s in cfp.skills if s.lower() not in self.skills]
        if missing:
            return f"lacks skills {missing}"
        if int(cfp.record["mode"]) != 0:
            return "contests are not supported by this package yet"
        if cfp.raw.get("from_reward"):
            return "bounties paid in pledge credits are not supported by this package yet"
        if int(cfp.record["deadline"]) < cfp.bid_close_at + cfp.award_grace_secs:
            return "the deadline leaves no time to award"
        return None

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        """An authenticated REST call (logs in, and again when the token expired)."""
        for attempt in range(2):
            if self._token is None:
                await self._login()
            try:
                answer = await http.request(
                    method, self.http_base + path, body, {"authorization": f"Bearer {self._token}"}
                )
                self._trace("rest", {"path": path, "request": body, "answer": answer})
                return answer
            except http.HttpError as e:
                self._trace(
                    "rest", {"path": path, "request": body, "status": e.status, "answer": e.body}
                )
                if e.status == 401 and attempt == 0:
                    self._token = None
                    continue
                raise
        raise AssertionError("unreachable")

    async def _login(self) -> None:
        ch = await http.request("POST", f"{self.http_base}/v1/auth/challenge", {})
        sig = Account.sign_message(encode_defunct(text=ch["message"]), private_key=self._key)
        out = await http.request(
            "POST",
            f"{self.http_base}/v1/auth/login",
            {
                "address": self.address,
                "nonce": ch["nonce"],
                "signature": "0x" + bytes(sig.signature).hex(),
            },
        )
        self._token = out["token"]

    async def _execute(self, group: str, td: dict[str, Any]) -> None:
        assert self._handler is not None
        inp = td.get("input") or {}
        task = Task(
            bounty_id=inp.get("bounty_id", ""),
            task_id=td["task_id"],
            group_id=group,
            description=inp.get("description", ""),
            input=inp.get("input"),
            record=inp.get("record", {}),
            verify=inp.get("verify", ""),
        )
        try:
            result = await self._handler(task)
            json.dumps(result)  # the result must be JSON
            body = {"status": "done", "result": result}
        except Exception as e:
            log.warning("task %s failed: %s", task.task_id, e)
            body = {"status": "failed", "result": f"{type(e).__name__}: {e}"}
        frame = {
            "type": "send",
            "group_id": group,
            "msg_id": f"result-{task.task_id}",
            "state": "execution",
            "task_desc": {"task_id": task.task_id},
            "body": body,
        }
        self._outbox[frame["msg_id"]] = frame
        await self._deliver(frame)

    async def _deliver(self, frame: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None:
            return  # sent again after the reconnect
        ack = await self.request(conn, frame)
        self._outbox.pop(frame["msg_id"], None)
        log.info("delivered %s (seq %s)", frame["msg_id"], ack.get("seq"))

    async def _collect(self, v: dict[str, Any]) -> None:
        record = v.get("record") or {}
        if str(record.get("provider", "")).lower() != self.address.lower():
            return
        if v.get("accept") is not True:
            log.info("bounty %s: result rejected (%s)", v.get("bounty_id"), v.get("reason"))
            return
        escrow = (self._market or {})["deployment"]["bountyEscrow"]
        try:
            receipt = await self.chain.submit_and_attest(
                escrow,
                v["bounty_id"],
                record,
                v["result_hash"],
                int(v["verdict"]),
                v["attestation"],
            )
        except RpcError as e:
            status = await self.chain.status_of(escrow, v["bounty_id"])
            if status != "Awarded":
                log.info("bounty %s is %s already; nothing to collect", v["bounty_id"], status)
                return
            raise RuntimeError(f"submitAndAttest for {v['bounty_id']} failed: {e}") from None
        price = int(record["price"])
        payout = Payout(
            bounty_id=v["bounty_id"],
            tx_hash=receipt["transactionHash"],
            token=record["token"],
            net=price - price * int(record["feeBps"]) // 10_000,
        )
        self.payouts.append(payout)
        log.info("paid %s for %s (tx %s)", payout.net, payout.bounty_id, payout.tx_hash)
        if self._payout_cb is not None:
            out = self._payout_cb(payout)
            if inspect.isawaitable(out):
                await out


class NodeError(Exception):
    """The node answered a request with an `error` frame."""


class LoginRefused(Exception):
    """The node refused the login (wrong key, expired challenge)."""
