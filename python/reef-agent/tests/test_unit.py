"""Unit tests: canonical JSON against the node's vectors, EIP-712 signatures, bad input."""

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from reef_agent import Agent, Domain, canonical_json, result_hash, sign_bid, terms_hash
from reef_agent.eip712 import BID_TYPES

REPO = Path(__file__).resolve().parents[3]
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil dev 1
ZERO = "0x" + "00" * 32
RECORD = {
    "poster": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "token": "0x0000000000000000000000000000000000000000",
    "amount": "5000000000000000000", "price": "0",
    "provider": "0x0000000000000000000000000000000000000000",
    "evaluator": "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "arbiter": "0x0000000000000000000000000000000000000000",
    "deadline": 1767229200, "reviewWindow": 3600, "challengeWindow": 0, "feeBps": 100,
    "mode": 0, "maxWinners": 0, "specHash": "0x" + "11" * 32, "resultHash": ZERO,
}  # fmt: skip


def test_canonical_json_matches_the_nodes_vectors():
    doc = json.loads((REPO / "docs/vectors/canonical_json.json").read_text())
    assert len(doc["cases"]) >= 5
    for case in doc["cases"]:
        got = canonical_json(json.loads(case["input"])).decode()
        assert got == case["canonical"], case["input"]


def test_result_hash_is_keccak_of_the_canonical_bytes():
    # keccak256("[1,3,5,9]"), as `cast keccak '[1,3,5,9]'` prints it.
    assert result_hash([1, 3, 5, 9]) == result_hash(json.loads("[1, 3, 5, 9]"))
    assert result_hash({"b": 1, "a": 2}) == result_hash({"a": 2, "b": 1})
    assert result_hash([1, 3, 5, 9]) != result_hash([1, 3, 9, 5])
    with pytest.raises(ValueError):
        canonical_json(float("nan"))
    with pytest.raises(TypeError):
        canonical_json({1: 2})


def test_terms_hash_changes_with_every_field_and_refuses_incomplete_records():
    h = terms_hash(RECORD)
    assert h.startswith("0x") and len(h) == 66
    for field in ("amount", "deadline", "feeBps"):
        assert terms_hash(dict(RECORD, **{field: int(RECORD[field]) + 1})) != h, field
    with pytest.raises(ValueError, match="record lacks specHash"):
        terms_hash({k: v for k, v in RECORD.items() if k != "specHash"})


def test_a_bid_signature_recovers_to_the_bidder():
    domain = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    bidder = Account.from_key(KEY).address
    bid = {
        "bountyId": "0x" + "ab" * 32,
        "termsHash": terms_hash(RECORD),
        "bidder": bidder,
        "amount": "4000000000000000000",
        "deadline": 1767229200,
        "eta": 30,
        "bond": "1000",
        "nonce": "7",
    }
    sig = sign_bid(KEY, domain, bid)
    assert len(bytes.fromhex(sig[2:])) == 65
    message = dict(
        bid,
        bountyId=int(bid["bountyId"], 16),
        amount=int(bid["amount"]),
        bond=int(bid["bond"]),
        nonce=int(bid["nonce"]),
        termsHash=bytes.fromhex(bid["termsHash"][2:]),
    )
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Bid": BID_TYPES,
        },
        "primaryType": "Bid",
        "domain": domain.as_dict(),
        "message": message,
    }
    assert Account.recover_message(encode_typed_data(full_message=typed), signature=sig) == bidder
    # Another chain id is another domain: the same bid recovers to someone else.
    other = dict(typed, domain=Domain(1, domain.escrow).as_dict())
    assert Account.recover_message(encode_typed_data(full_message=other), signature=sig) != bidder


def test_bad_configuration_is_refused_clearly():
    ok = {
        "key": KEY,
        "node": "ws://127.0.0.1:1/v1/ws",
        "rpc": "http://127.0.0.1:1",
        "name": "n",
        "skills": ["sort"],
    }
    with pytest.raises(ValueError, match="not a valid secp256k1 private key"):
        Agent(**dict(ok, key="0x1234"))
    with pytest.raises(ValueError, match="ws:// or wss://"):
        Agent(**dict(ok, node="http://127.0.0.1:1"))
    with pytest.raises(ValueError, match="at least one skill"):
        Agent(**dict(ok, skills=[]))
    agent = Agent(**ok)
    assert KEY[2:] not in repr(agent) and KEY[2:] not in repr(agent.chain)
    with pytest.raises(TypeError, match="async def"):
        agent.on_task(lambda task: task)  # type: ignore[arg-type]
