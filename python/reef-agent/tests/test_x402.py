"""x402 pay-per-request (docs/x402.md), paid by the OFFICIAL x402 Python client (PyPI `x402`):
a Reef metered agent sells one call over HTTP (`reef agent serve-metered --x402-listen`); the
client gets 402, signs an EIP-3009 authorization for the devnet token and gets the result; the
agent's token balance grows on chain. A replayed payload and an underpaying one are refused
with 402 before the program runs (the program logs every run, and the log stays unchanged).
The 402 body, the payment payload and the settlement response are checked against
docs/schemas/."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import REPO, Devnet, Node, reef_bin
from eth_account import Account
from test_conformance import check
from x402 import x402ClientSync
from x402.http.clients.requests import wrapRequestsWithPayment
from x402.http.utils import encode_payment_signature_header
from x402.mechanisms.evm.exact.register import register_exact_evm_client
from x402.schemas import PaymentRequired

PRICE = 10**15  # 0.001 rUSD, the agent's --price
BRAIN = """
import json, sys
call = json.load(sys.stdin)
with open(sys.argv[1], "a") as log:
    log.write(json.dumps(call) + "\\n")
print(json.dumps(sorted(call["input"])))
"""


def rpc(url: str, method: str, *params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    req = urllib.request.Request(url, body.encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
    assert "error" not in out, out
    return out["result"]


def balance(devnet: Devnet, token: str, who: str) -> int:
    data = "0x70a08231" + who[2:].lower().rjust(64, "0")
    return int(rpc(devnet.rpc, "eth_call", {"to": token, "data": data}, "latest"), 16)


def mint(devnet: Devnet, token: str, to: str, amount: int) -> None:
    """`ReefTestToken.mint` (anyone may mint on the devnet), sent from anvil's first account."""
    data = "0x40c10f19" + to[2:].lower().rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    sender = Account.from_key(
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    ).address
    tx = rpc(devnet.rpc, "eth_sendTransaction", {"from": sender, "to": token, "data": data})
    receipt = receipt_of(devnet, tx)
    assert receipt["status"] == "0x1", receipt


def receipt_of(devnet: Devnet, tx: str) -> dict[str, Any]:
    """The receipt of `tx`, waited for: anvil can answer the send before the mined block's
    receipts can be read (seen once in `make test`: `None` right after the send)."""
    deadline = time.monotonic() + 10
    while (receipt := rpc(devnet.rpc, "eth_getTransactionReceipt", tx)) is None:
        assert time.monotonic() < deadline, f"no receipt for {tx} after 10 s"
        time.sleep(0.05)
    return receipt


@dataclass
class Agent:
    address: str
    url: str
    log: Path


@pytest.fixture(scope="module")
def x402_agent(
    devnet: Devnet, node: Node, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Agent]:
    tmp = tmp_path_factory.mktemp("x402")
    key = Account.create()
    # The agent settles payments itself: it needs ETH for the gas.
    rpc(devnet.rpc, "anvil_setBalance", key.address, hex(10**19))
    brain = tmp / "brain.py"
    brain.write_text(BRAIN)
    log = tmp / "calls.jsonl"
    log.touch()
    proc = subprocess.Popen(
        [
            reef_bin(),
            "agent",
            "serve-metered",
            "--node",
            node.ws,
            "--name",
            "x402-sorter",
            "--skills",
            "sort",
            "--price",
            "0.001",
            "--token",
            "test",
            "--json",
            "--exec",
            f"python3 {brain} {log}",
            "--state-dir",
            str(tmp / "state"),
            "--x402-listen",
            "127.0.0.1:0",
            "--key",
            "0x" + bytes(key.key).hex(),
            "--rpc-url",
            devnet.rpc,
            "--deployments",
            str(devnet.deployments),
        ],
        cwd=REPO,
        env=dict(os.environ, RUST_LOG="warn"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready", ready
        assert ready["x402"].endswith("/v1/x402/call"), ready
        yield Agent(address=key.address, url=ready["x402"], log=log)
    finally:
        proc.terminate()
        proc.wait(10)


def payer(devnet: Devnet, token: str) -> tuple[Any, x402ClientSync]:
    acct = Account.create()
    mint(devnet, token, acct.address, 10**18)
    client = x402ClientSync()
    register_exact_evm_client(client, acct)
    # The client refuses tokens it does not know unless they are allowed (with a cap).
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": "eip155:31337", "asset": token, "max_amount_per_payment": str(PRICE)}
            ]
        }
    )
    return acct, client


def calls(agent: Agent) -> list[dict[str, Any]]:
    return [json.loads(line) for line in agent.log.read_text().splitlines()]


def decode(header: str) -> Any:
    return json.loads(base64.b64decode(header))


def test_the_official_x402_client_pays_a_reef_agent_per_call(
    devnet: Devnet, x402_agent: Agent
) -> None:
    used: Counter[str] = Counter()
    token = devnet.deployment["testToken"]
    acct, client = payer(devnet, token)

    # Unpaid: 402 with the requirements, in the body and in PAYMENT-REQUIRED.
    r = requests.post(x402_agent.url, json=[3, 1, 2], timeout=30)
    assert r.status_code == 402, r.text
    body = r.json()
    check("x402_payment_required.json", body, used)
    assert decode(r.headers["PAYMENT-REQUIRED"]) == body
    (req,) = body["accepts"]
    assert req["network"] == "eip155:31337"
    assert req["asset"].lower() == token.lower()
    assert req["payTo"].lower() == x402_agent.address.lower()
    assert int(req["amount"]) == PRICE
    assert req["extra"] == {"name": "Reef Test USD", "version": "1"}
    assert calls(x402_agent) == []

    # Paid by the official client: it reads the 402, signs, retries.
    before = balance(devnet, token, x402_agent.address)
    session = wrapRequestsWithPayment(requests.Session(), client)
    r = session.post(x402_agent.url, json=[5, 3, 9, 1], timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] is True and out["result"] == [1, 3, 5, 9], out
    assert out["payer"].lower() == acct.address.lower()
    check("x402_call_result.json", out, used)
    settled = decode(r.headers["PAYMENT-RESPONSE"])
    check("x402_settle_response.json", settled, used)
    assert settled["success"] is True and settled["network"] == "eip155:31337"
    assert settled["transaction"] == out["transaction"]
    receipt = receipt_of(devnet, settled["transaction"])
    assert receipt["status"] == "0x1"
    assert balance(devnet, token, x402_agent.address) == before + PRICE
    (seen,) = calls(x402_agent)
    assert seen["payment"] == "x402" and seen["input"] == [5, 3, 9, 1]
    assert seen["payer"].lower() == acct.address.lower()

    # The payload the client actually sent (the adapter's paid request) matches the schema.
    sent = decode(r.request.headers["PAYMENT-SIGNATURE"])
    check("x402_payment_payload.json", sent, used)
    assert sent["payload"]["authorization"]["to"].lower() == x402_agent.address.lower()
    assert int(sent["payload"]["authorization"]["value"]) == PRICE
    assert used == Counter(
        {
            "x402_payment_required.json": 1,
            "x402_call_result.json": 1,
            "x402_settle_response.json": 1,
            "x402_payment_payload.json": 1,
        }
    )


def test_replayed_and_underpaying_payloads_are_refused_before_the_work(
    devnet: Devnet, x402_agent: Agent
) -> None:
    used: Counter[str] = Counter()
    token = devnet.deployment["testToken"]
    _, client = payer(devnet, token)
    r = requests.post(x402_agent.url, json=[2, 1], timeout=30)
    assert r.status_code == 402
    required = PaymentRequired.model_validate(r.json())

    # One payload, sent twice: paid and served once, the replay is refused.
    payload = client.create_payment_payload(required)
    headers = {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}
    n = len(calls(x402_agent))
    first = requests.post(x402_agent.url, json=[2, 1], headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    assert len(calls(x402_agent)) == n + 1
    paid = balance(devnet, token, x402_agent.address)
    replay = requests.post(x402_agent.url, json=[2, 1], headers=headers, timeout=60)
    assert replay.status_code == 402, replay.text
    check("x402_payment_required.json", replay.json(), used)
    assert replay.json()["error"].startswith("invalid_exact_evm_nonce_already_used"), replay.text
    assert len(calls(x402_agent)) == n + 1, "the replay did not run the program"
    assert balance(devnet, token, x402_agent.address) == paid

    # The client signs whatever amount it is asked for: ask it for less than the price.
    cheap = required.model_copy(deep=True)
    cheap.accepts[0].amount = str(PRICE - 1)
    under = client.create_payment_payload(cheap)
    assert under.payload["authorization"]["value"] == str(PRICE - 1)
    headers = {"PAYMENT-SIGNATURE": encode_payment_signature_header(under)}
    r = requests.post(x402_agent.url, json=[2, 1], headers=headers, timeout=60)
    assert r.status_code == 402, r.text
    check("x402_payment_required.json", r.json(), used)
    assert r.json()["error"].startswith("invalid_exact_evm_payload_authorization_value_mismatch"), (
        r.text
    )
    assert len(calls(x402_agent)) == n + 1, "the underpaying call did not run the program"
    assert balance(devnet, token, x402_agent.address) == paid
    # The underpaying authorization was never settled: its nonce is still unused.
    nonce = under.payload["authorization"]["nonce"]
    frm = under.payload["authorization"]["from"]
    data = "0xe94a0102" + frm[2:].lower().rjust(64, "0") + nonce[2:]
    state = rpc(devnet.rpc, "eth_call", {"to": token, "data": data}, "latest")
    assert int(state, 16) == 0

    # A payload that is not base64 JSON: 402 with the reason, nothing run.
    r = requests.post(x402_agent.url, json=[2, 1], headers={"PAYMENT-SIGNATURE": "%%%"}, timeout=30)
    assert r.status_code == 402 and r.json()["error"].startswith("invalid_payload"), r.text
    # A body that is not JSON: 400.
    r = requests.post(x402_agent.url, data=b"{", headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert len(calls(x402_agent)) == n + 1
