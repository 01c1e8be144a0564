"""Reef agents as A2A agents, driven by the official A2A Python SDK (`a2a-sdk` on PyPI).

A real `reef agent run` sorts numbers on the devnet's market. The SDK resolves its A2A agent
card from the node, authenticates with the card's bearer scheme (a node login token), pays the
budget as the card's Reef terms say, and hires the agent over JSON-RPC: streamed, and blocking.
The result comes back as a verified artifact, the agent is paid from escrow and the unspent
budget returns to the caller. Tasks without terms, with a reused or short payment are refused
with A2A errors before any bounty is posted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.auth import AuthInterceptor, CredentialService
from a2a.client.client import ClientCallContext
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    SendMessageRequest,
    Task,
    TaskState,
)
from a2a.utils.errors import (
    ExtensionSupportRequiredError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
)
from conftest import DEV_KEYS, REPO, Devnet, Node, reef_bin, rest_login
from eth_abi import encode
from eth_account import Account
from google.protobuf import json_format
from jsonschema import Draft202012Validator

#: anvil's dev account 7: the sorting agent hired over A2A.
AGENT_KEY = "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356"
AGENT = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"
SKILL = "a2a-sort"
#: the A2A caller: dev account 2 (seeded with rUSD by `reef devnet up`).
CALLER_KEY = DEV_KEYS[2]
TERMS_URI = "https://github.com/reef-network/reef/blob/main/docs/a2a.md#reef-terms-v1"
UNIT = 10**18
SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def check(schema: str, value: Any) -> None:
    v = Draft202012Validator(json.loads((SCHEMAS / schema).read_text()))
    errors = sorted(v.iter_errors(value), key=lambda e: list(e.path))
    assert not errors, f"{schema}: {errors[0].message} at {list(errors[0].path)} in {value}"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def a2a_agent(devnet: Devnet, node: Node) -> Iterator[None]:
    brain = f"python3 {REPO / 'examples/agents/sort.py'}"
    proc = subprocess.Popen(
        [
            reef_bin(), "agent", "run", "--node", node.ws, "--key", AGENT_KEY,
            "--name", "a2a-sorter", "--description", "Sorts lists of numbers ascending.",
            "--skills", SKILL, "--rpc-url", devnet.rpc, "--bid-price", "3", "--exec", brain,
        ],
        cwd=REPO,
        env=dict(os.environ, RUST_LOG="warn"),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get_json(f"{node.http}/v1/agents/{AGENT}")["online"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the sorting agent never came online")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


class NodeToken(CredentialService):
    """The caller's node login token, for the card's bearer scheme."""

    def __init__(self, scheme: str, token: str) -> None:
        self.scheme, self.token = scheme, token

    async def get_credentials(self, security_scheme_name: str, context: Any) -> str | None:
        return self.token if security_scheme_name == self.scheme else None


async def pay(devnet: Devnet, payee: str, amount: int) -> str:
    """Transfers `amount` rUSD from the caller to `payee`; the transaction hash."""
    from eth_utils import to_checksum_address

    from reef_agent.chain import Chain, selector

    chain = Chain(devnet.rpc, CALLER_KEY)
    data = selector("transfer(address,uint256)") + encode(
        ["address", "uint256"], [to_checksum_address(payee), amount]
    )
    receipt = await chain.send(devnet.deployment["testToken"], data)
    return str(receipt["transactionHash"])


async def balance(devnet: Devnet, who: str) -> int:
    from reef_agent.chain import Chain

    return await Chain(devnet.rpc, CALLER_KEY).token_balance(devnet.deployment["testToken"], who)


def task_message(terms: dict[str, Any] | None, numbers: list[int]) -> SendMessageRequest:
    msg = Message(
        message_id=str(uuid.uuid4()),
        role="ROLE_USER",
        parts=[Part(text="Sort these numbers ascending"), Part()],
    )
    json_format.ParseDict({"data": numbers}, msg.parts[1])
    if terms is not None:
        json_format.ParseDict({TERMS_URI: terms}, msg.metadata)
        msg.extensions.append(TERMS_URI)
    return SendMessageRequest(message=msg)


def bounty_count(node: Node) -> int:
    listed = get_json(f"{node.http}/v1/market/bounties")
    return len(listed if isinstance(listed, list) else listed["bounties"])


def test_an_a2a_client_hires_a_reef_agent_and_gets_a_paid_verified_result(
    devnet: Devnet, node: Node, a2a_agent: None
) -> None:
    async def run() -> None:
        base = f"{node.http}/a2a/agents/{AGENT}"
        # The card: raw JSON against the schemas, then as the SDK reads it.
        raw = get_json(f"{base}/.well-known/agent-card.json")
        check("a2a.agent_card.json", raw)
        # Strict protocol buffer JSON: an unknown field or enum name would raise.
        json_format.ParseDict(raw, AgentCard())
        terms = raw["capabilities"]["extensions"][0]["params"]
        check("a2a.terms.json", terms)
        node_card = get_json(f"{node.http}/.well-known/agent-card.json")
        check("a2a.agent_card.json", node_card)
        assert node_card["supportedInterfaces"][0]["url"] == f"{node.http}/a2a"

        token = await rest_login(node.http, CALLER_KEY)
        async with httpx.AsyncClient(timeout=120) as http:
            card = await A2ACardResolver(http, base).get_agent_card()
            assert [s.id for s in card.skills] == [SKILL]
            assert card.name == "a2a-sorter"
            assert card.capabilities.streaming
            ext = card.capabilities.extensions[0]
            assert ext.uri == TERMS_URI and ext.required
            assert card.supported_interfaces[0].protocol_binding == "JSONRPC"
            assert card.supported_interfaces[0].protocol_version == "1.0"
            scheme = next(iter(card.security_schemes))
            assert card.security_schemes[scheme].http_auth_security_scheme.scheme == "Bearer"
            payee = terms["payee"]
            assert int(terms["minBudget"]) <= 5 * UNIT
            assert terms["token"].lower() == devnet.deployment["testToken"].lower()

            auth = AuthInterceptor(NodeToken(scheme, token))
            streaming = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(
                card, interceptors=[auth]
            )
            blocking = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(
                card, interceptors=[auth]
            )
            ctx = ClientCallContext()

            # Refused before any work: no terms, a short payment, a reused payment.
            posted_before = bounty_count(node)
            with pytest.raises(ExtensionSupportRequiredError):
                async for _ in blocking.send_message(task_message(None, [2, 1]), context=ctx):
                    pass
            short_tx = await pay(devnet, payee, 1 * UNIT)
            short = {
                "budget": str(5 * UNIT),
                "paymentTx": short_tx,
                "verify": {"mode": "hash", "expect": [1, 2]},
            }
            check("a2a.task_terms.json", short)
            with pytest.raises(InvalidParamsError, match="transfers"):
                async for _ in blocking.send_message(task_message(short, [2, 1]), context=ctx):
                    pass
            assert bounty_count(node) == posted_before

            # Hired over a stream: the task, status updates, the artifact, the final status.
            caller = Account.from_key(CALLER_KEY).address
            agent_before = await balance(devnet, AGENT)
            tx = await pay(devnet, payee, 5 * UNIT)
            caller_paid = await balance(devnet, caller)
            task_terms = {
                "budget": str(5 * UNIT),
                "paymentTx": tx,
                "verify": {"mode": "hash", "expect": [1, 3, 5, 9]},
                "bidWindowMs": 1000,
                "deadlineSecs": 600,
            }
            check("a2a.task_terms.json", task_terms)
            started = time.monotonic()
            events = [
                e
                async for e in streaming.send_message(
                    task_message(task_terms, [5, 3, 9, 1]), context=ctx
                )
            ]
            streamed_secs = time.monotonic() - started
            kinds = [e.WhichOneof("payload") for e in events]
            assert kinds[0] == "task", kinds
            assert "status_update" in kinds and "artifact_update" in kinds, kinds
            first = events[0].task
            assert first.status.state == TaskState.TASK_STATE_SUBMITTED
            states = [e.status_update.status.state for e in events if e.HasField("status_update")]
            assert TaskState.TASK_STATE_WORKING in states, states
            assert states[-1] == TaskState.TASK_STATE_COMPLETED, states
            art = next(e.artifact_update.artifact for e in events if e.HasField("artifact_update"))
            assert json_format.MessageToDict(art.parts[0])["data"] == [1, 3, 5, 9]

            # The finished task: metadata says what was paid and returned.
            done = await streaming.get_task(GetTaskRequest(id=first.id), context=ctx)
            assert done.status.state == TaskState.TASK_STATE_COMPLETED
            meta = json_format.MessageToDict(done.metadata)[TERMS_URI]
            check("a2a.task_metadata.json", meta)
            assert meta["provider"].lower() == AGENT.lower()
            assert int(meta["price"]) == 3 * UNIT
            assert int(meta["refund"]) == 2 * UNIT
            assert meta["paid"] == meta["budget"] == str(5 * UNIT)
            info = get_json(f"{node.http}/v1/market/info")
            fee = 3 * UNIT * int(info["fee_bps"]) // 10_000
            assert await balance(devnet, AGENT) - agent_before == 3 * UNIT - fee
            assert await balance(devnet, caller) - caller_paid == 2 * UNIT
            # The raw JSON-RPC answer is strict protocol buffer JSON of a Task.
            raw_task = (
                await http.post(
                    base,
                    json={
                        "jsonrpc": "2.0",
                        "id": 7,
                        "method": "GetTask",
                        "params": {"id": first.id},
                    },
                    headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
                )
            ).json()
            assert raw_task["id"] == 7, raw_task
            json_format.ParseDict(raw_task["result"], Task())
            bounty = get_json(f"{node.http}/v1/market/bounties/{meta['bounty']}")
            assert bounty["phase"] == "settled" and bounty["verify"] == "hash"

            # Figures (printed with -s, never asserted): gas of the three transactions of a
            # task beyond the market's own, and the streamed task's wall time.
            from reef_agent.chain import Chain

            chain = Chain(devnet.rpc, CALLER_KEY)

            async def gas(tx_hash: str) -> int:
                receipt = await chain.call("eth_getTransactionReceipt", tx_hash)
                return int(receipt["gasUsed"], 16)

            print(
                f"\na2a figures: payment transfer {await gas(tx)} gas, "
                f"post+fund+award {await gas(meta['awardTx'])} gas, "
                f"refund transfer {await gas(meta['refundTx'])} gas, "
                f"streamed task {streamed_secs:.2f} s (bid window 1 s)"
            )

            # The agent's ERC-8004 registration file names its A2A card.
            reg = get_json(f"{node.http}/v1/agents/{AGENT}/registration.json")
            check("erc8004_registration.json", reg)
            service = next(s for s in reg["services"] if s["name"] == "A2A")
            assert service["endpoint"] == f"{base}/.well-known/agent-card.json"
            assert service["skills"] == [SKILL]

            # The same payment again: refused, nothing posted.
            posted_before = bounty_count(node)
            with pytest.raises(InvalidParamsError, match="already paid"):
                async for _ in blocking.send_message(task_message(task_terms, [5, 3]), context=ctx):
                    pass
            assert bounty_count(node) == posted_before

            # Blocking SendMessage: the answer is the ended task with its artifact. Paid 4.5
            # for a budget of 4: the provider asks 3, so 1.5 comes back.
            before2 = await balance(devnet, caller)
            tx2 = await pay(devnet, payee, 45 * UNIT // 10)
            terms2 = dict(task_terms, budget=str(4 * UNIT), paymentTx=tx2, verify={
                "mode": "hash", "expect": [0, 7]})  # fmt: skip
            [answer] = [
                e async for e in blocking.send_message(task_message(terms2, [7, 0]), context=ctx)
            ]
            ended = answer.task
            if ended.status.state != TaskState.TASK_STATE_COMPLETED:
                # Longer than the node's blocking wait: follow it to its end.
                async def completed() -> Any:
                    t = await blocking.get_task(GetTaskRequest(id=ended.id), context=ctx)
                    return t if t.status.state == TaskState.TASK_STATE_COMPLETED else None

                deadline = time.monotonic() + 120
                while (t := await completed()) is None:
                    assert time.monotonic() < deadline, "the blocking task never completed"
                    await asyncio.sleep(0.2)
                ended = t
            assert json_format.MessageToDict(ended.artifacts[0].parts[0])["data"] == [0, 7]
            meta2 = json_format.MessageToDict(ended.metadata)[TERMS_URI]
            check("a2a.task_metadata.json", meta2)
            assert (meta2["budget"], meta2["paid"]) == (str(4 * UNIT), str(45 * UNIT // 10))
            assert int(meta2["refund"]) == 15 * UNIT // 10
            assert before2 - await balance(devnet, caller) == 3 * UNIT

            # Two tasks at once: each is posted, awarded and paid on its own.
            async def hire(numbers: list[int], paid_tx: str) -> Any:
                terms_n = dict(task_terms, budget=str(4 * UNIT), paymentTx=paid_tx, verify={
                    "mode": "hash", "expect": sorted(numbers)})  # fmt: skip
                got = [
                    e
                    async for e in streaming.send_message(
                        task_message(terms_n, numbers), context=ClientCallContext()
                    )
                ]
                last = [e.status_update.status.state for e in got if e.HasField("status_update")]
                art = [e.artifact_update.artifact for e in got if e.HasField("artifact_update")]
                return last[-1], json_format.MessageToDict(art[0].parts[0])["data"]

            # (Paid one after the other: the caller's transactions take nonces in turn.)
            pay_a, pay_b = await pay(devnet, payee, 4 * UNIT), await pay(devnet, payee, 4 * UNIT)
            both = await asyncio.gather(hire([3, 2, 1], pay_a), hire([9, 8], pay_b))
            assert both == [
                (TaskState.TASK_STATE_COMPLETED, [1, 2, 3]),
                (TaskState.TASK_STATE_COMPLETED, [8, 9]),
            ], both

            # Cancelled while it collects bids: the whole payment goes back; once ended, a
            # task cannot be cancelled.
            polling = ClientFactory(
                ClientConfig(httpx_client=http, streaming=False, polling=True)
            ).create(card, interceptors=[auth])
            before3 = await balance(devnet, caller)
            tx3 = await pay(devnet, payee, 2 * UNIT)
            terms3 = dict(task_terms, budget=str(2 * UNIT), paymentTx=tx3, bidWindowMs=60_000)
            [sent] = [
                e async for e in polling.send_message(task_message(terms3, [2, 1]), context=ctx)
            ]
            assert sent.task.status.state == TaskState.TASK_STATE_SUBMITTED
            cancelled = await polling.cancel_task(CancelTaskRequest(id=sent.task.id), context=ctx)
            assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
            meta3 = json_format.MessageToDict(cancelled.metadata)[TERMS_URI]
            check("a2a.task_metadata.json", meta3)
            assert int(meta3["refund"]) == 2 * UNIT and meta3["refundTx"], meta3
            assert await balance(devnet, caller) == before3
            with pytest.raises(TaskNotCancelableError):
                await polling.cancel_task(CancelTaskRequest(id=first.id), context=ctx)

            # ListTasks: this endpoint's tasks of the caller, paged; none at the node's.
            async def rpc_result(url: str, method: str, params: dict[str, Any]) -> Any:
                r = await http.post(
                    url,
                    json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                    headers={"Authorization": f"Bearer {token}"},
                )
                return r.json()

            page = (await rpc_result(base, "ListTasks", {"pageSize": 3}))["result"]
            assert (page["totalSize"], len(page["tasks"]), page["nextPageToken"]) == (5, 3, "3")
            rest = (await rpc_result(base, "ListTasks", {"pageToken": "3"}))["result"]
            assert [t["id"] for t in rest["tasks"]][-1] == first.id, rest
            assert rest["nextPageToken"] == "", rest
            done_only = {"status": "TASK_STATE_CANCELED"}
            assert (await rpc_result(base, "ListTasks", done_only))["result"]["totalSize"] == 1
            for t in page["tasks"] + rest["tasks"]:
                json_format.ParseDict(t, Task())
            at_node = f"{node.http}/a2a"
            assert (await rpc_result(at_node, "ListTasks", {}))["result"]["totalSize"] == 0
            missing = await rpc_result(at_node, "GetTask", {"id": first.id})
            assert missing["error"]["code"] == -32001, missing

        # Another caller does not see the task.
        other = await rest_login(node.http, DEV_KEYS[1])
        async with httpx.AsyncClient(timeout=30) as http2:
            card2 = await A2ACardResolver(http2, base).get_agent_card()
            intruder = ClientFactory(ClientConfig(httpx_client=http2, streaming=False)).create(
                card2, interceptors=[AuthInterceptor(NodeToken(scheme, other))]
            )
            with pytest.raises(TaskNotFoundError):
                await intruder.get_task(GetTaskRequest(id=first.id), context=ClientCallContext())

    asyncio.run(run())


def test_the_a2a_endpoint_refuses_callers_without_a_token_and_bad_json_rpc(
    node: Node, a2a_agent: None
) -> None:
    url = f"{node.http}/a2a/agents/{AGENT}"
    anon = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {}})
    assert anon.status_code == 401
    check("rest_error.json", anon.json())

    async def token() -> str:
        return await rest_login(node.http, CALLER_KEY)

    auth = {"Authorization": f"Bearer {asyncio.run(token())}"}

    def rpc(method: str, params: Any = None, **extra: Any) -> bytes:
        req: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method, **extra}
        if params is not None:
            req["params"] = params
        return json.dumps(req).encode()

    cases = [
        (b"{not json", -32700),
        (json.dumps({"id": 1, "method": "GetTask"}).encode(), -32600),
        (rpc("message/send"), -32601),
        (rpc("GetTask", {}), -32602),
        (rpc("GetTask", {"id": "nope"}), -32001),
        (rpc("CreateTaskPushNotificationConfig", {}), -32003),
        (rpc("GetExtendedAgentCard"), -32007),
        (rpc("SendMessage", {"message": {"messageId": "m", "role": "ROLE_USER"}}), -32602),
    ]
    for body, code in cases:
        r = httpx.post(url, content=body, headers={**auth, "content-type": "application/json"})
        assert r.status_code == 200, (body, r.text)
        assert r.json()["error"]["code"] == code, (body, r.json())
    old = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}},
        headers={**auth, "A2A-Version": "0.3"},
    )
    assert old.json()["error"]["code"] == -32009
    unknown = f"{node.http}/a2a/agents/0x{'00' * 20}/.well-known/agent-card.json"
    assert httpx.get(unknown).status_code == 404


#: anvil's dev account 8: `reef agent run --a2a`, earning with the SDK server's skill.
REMOTE_AGENT_KEY = "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97"
REMOTE_AGENT = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"
REMOTE_SKILL = "a2a-remote-sort"


@pytest.fixture(scope="module")
def sdk_server() -> Iterator[str]:
    from conftest import free_port

    port = free_port()
    server = Path(__file__).parent / "fixtures" / "a2a_sort_server.py"
    proc = subprocess.Popen(
        [os.environ.get("PYTHON", sys.executable), str(server), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_a2a_sdk_server_earns_a_bounty_through_reef_agent_run_a2a(
    devnet: Devnet, node: Node, sdk_server: str
) -> None:
    agent = subprocess.Popen(
        [
            reef_bin(), "agent", "run", "--node", node.ws, "--key", REMOTE_AGENT_KEY,
            "--rpc-url", devnet.rpc, "--bid-price", "2", "--a2a", sdk_server,
        ],
        cwd=REPO,
        env=dict(os.environ, RUST_LOG="warn"),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                me = get_json(f"{node.http}/v1/agents/{REMOTE_AGENT}")
                if me["online"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the --a2a agent never came online")
            time.sleep(0.1)
        # The remote card's skills and name are on the Reef card.
        assert me["card"]["skills"] == [REMOTE_SKILL], me
        assert me["card"]["name"] == "sdk-sorter", me

        async def agent_balance() -> int:
            return await balance(devnet, REMOTE_AGENT)

        before = asyncio.run(agent_balance())
        post = subprocess.run(
            [
                reef_bin(), "bounty", "post", "Sort these numbers ascending",
                "--reward", "3", "--token", "test", "--node", node.http,
                "--skills", REMOTE_SKILL, "--bid-window", "1s", "--deadline", "1h",
                "--input", "[8,2,4,16]", "--verify", "hash", "--expect", "[2,4,8,16]",
                "--approve", "--dev-account", "0", "--json", "--rpc-url", devnet.rpc,
                "--deployments", str(devnet.deployments),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )  # fmt: skip
        assert post.returncode == 0, post.stderr
        out = json.loads(post.stdout)
        assert out["phase"] == "settled" and out["paid"] is True, out
        assert out["winner"].lower() == REMOTE_AGENT.lower(), out
        info = get_json(f"{node.http}/v1/market/info")
        fee = 2 * UNIT * int(info["fee_bps"]) // 10_000
        assert asyncio.run(agent_balance()) - before == 2 * UNIT - fee
    finally:
        agent.terminate()
        agent.wait(10)


def test_reef_agent_run_a2a_refuses_a_card_that_requires_an_extension(
    devnet: Devnet, node: Node, a2a_agent: None
) -> None:
    # A Reef node's own cards require the Reef terms, which an earning agent does not send.
    run = subprocess.run(
        [
            reef_bin(), "agent", "run", "--node", node.ws, "--key", REMOTE_AGENT_KEY,
            "--rpc-url", devnet.rpc, "--a2a", f"{node.http}/a2a/agents/{AGENT}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert run.returncode == 1, run
    assert "requires the extension" in run.stderr and TERMS_URI in run.stderr, run.stderr
