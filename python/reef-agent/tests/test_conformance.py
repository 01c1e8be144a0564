"""The node's real frames and REST bodies, from one bounty's lifecycle, against the JSON
Schemas in docs/schemas/ (docs/earning.md). Fails when the node's output drifts from them."""

import json
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def schema(name):
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()))


def check(name, value, used):
    errors = sorted(schema(name).iter_errors(value), key=lambda e: list(e.path))
    assert not errors, f"{name}: {errors[0].message} at {list(errors[0].path)} in {value}"
    used[name] += 1


def test_every_schema_is_a_valid_draft_2020_12_schema():
    files = sorted(SCHEMAS.glob("*.json"))
    assert len(files) >= 40
    for f in files:
        Draft202012Validator.check_schema(json.loads(f.read_text()))


def test_frames_and_bodies_match_the_schemas(lifecycle):
    used: Counter[str] = Counter()
    frames, me, market = lifecycle["frames"], lifecycle["agent"].lower(), lifecycle["evaluator"]
    sent = {}  # req_id -> the request frame
    for direction, f in frames:
        if direction == "out":
            check(f"client.{f['type']}.json", f, used)
            if "req_id" in f:
                sent[f["req_id"]] = f
            if f["type"] == "send" and f.get("state") == "execution":
                check("market.execution.json", f, used)
        elif direction == "in":
            check(f"server.{f['type']}.json", f, used)
            if f["type"] in ("ok", "error", "ack", "pong") and "req_id" in f:
                # A numeric req_id comes back as a number, not as a string.
                assert isinstance(f["req_id"], int), f
                request = sent[f["req_id"]]
                if f["type"] == "ok" and request["type"] == "register":
                    check("agent_info.json", f["result"], used)
                if f["type"] == "ok" and request["type"] == "list_groups":
                    for g in f["result"]["groups"]:
                        check("group_info.json", g, used)
            if f["type"] != "message":
                continue
            body = f.get("body") if isinstance(f.get("body"), dict) else {}
            from_market = f["sender_id"].lower() == market.lower()
            if from_market and body.get("kind") == "cfp":
                check("market.cfp.json", f, used)
            elif from_market and f["state"] == "task_assignment":
                check("market.assignment.json", f, used)
            elif from_market and body.get("kind") == "verdict":
                check("market.verdict.json", f, used)
            elif f["sender_id"].lower() == me and f["state"] == "execution":
                check("market.execution.json", f, used)
        elif direction == "rest" and str(f.get("path", "")).endswith("/bids"):
            if f.get("status") != 400:  # the test's deliberately malformed bid
                check("market.bid_request.json", f["request"], used)
            if "status" not in f:
                check("market.bid_answer.json", f["answer"], used)
    for name, body in lifecycle["rest"]:
        check(name, body, used)
    # Every kind of frame and body of the lifecycle was seen (and checked).
    for name in [
        "market.cfp.json",
        "market.assignment.json",
        "market.execution.json",
        "market.verdict.json",
        "market.bid_request.json",
        "market.bid_answer.json",
        "market.bounty_view.json",
        "market.info.json",
        "market.post_request.json",
        "market.post_answer.json",
        "agent_info.json",
        "group_info.json",
        "rest_error.json",
        "server.invited.json",
        "server.ack.json",
    ]:
        assert used[name] > 0, f"no {name} frame or body was seen: {dict(used)}"
    assert used["market.cfp.json"] >= 2, "both bounties' calls for proposals"
    assert used["rest_error.json"] >= 5


@pytest.mark.parametrize(
    "name,good,bad",
    [
        (
            "market.bid_request.json",
            {
                "bid": {
                    "bountyId": "0x1",
                    "termsHash": "0x" + "1" * 64,
                    "bidder": "0x" + "2" * 40,
                    "amount": "5",
                    "deadline": 1,
                    "eta": 0,
                    "nonce": "9",
                },
                "signature": "0x" + "a" * 130,
            },
            {
                "bid": {
                    "bountyId": "0x1",
                    "termsHash": "0x" + "1" * 64,
                    "bidder": "0x" + "2" * 40,
                    "amount": 5,
                    "deadline": 1,
                    "eta": 0,
                    "nonce": "9",
                },
                "signature": "0x" + "a" * 130,
            },
        ),
        (
            "rest_error.json",
            {"code": "conflict", "error": "conflict", "message": "closed"},
            {"error": "conflict", "message": "closed"},
        ),
    ],
)
def test_the_schemas_refuse_what_the_docs_forbid(name, good, bad):
    # Amounts are decimal strings, and an error carries `code`: the schemas can fail.
    assert schema(name).is_valid(good)
    assert not schema(name).is_valid(bad)


def test_the_erc8004_registration_file_matches_its_schema(lifecycle, devnet, node):
    """`reef agent register` points the lifecycle agent's new ERC-8004 identity at the node's
    registration file; the file the node serves (and the command prints) matches
    docs/schemas/erc8004_registration.json, the spec's field list."""
    from conftest import reef

    out = reef(
        "agent",
        "register",
        "--node",
        node.http,
        "--dev-account",
        "1",
        "--json",
        "--rpc-url",
        devnet.rpc,
        "--deployments",
        str(devnet.deployments),
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    file = answer["registration"]
    used: Counter[str] = Counter()
    check("erc8004_registration.json", file, used)
    assert answer["agent_uri"] == f"{node.http}/v1/agents/{lifecycle['agent']}/registration.json"
    assert [r["agentId"] for r in file["registrations"]] == [int(answer["agent_id"])]
    assert {s["name"] for s in file["services"]} >= {"reef", "MCP", "agentWallet"}
    # What the schema refuses: a file without registrations, or with a malformed registry.
    bad = dict(file, registrations=[{"agentId": 1, "agentRegistry": "0xabc"}])
    assert list(schema("erc8004_registration.json").iter_errors(bad))
    assert list(
        schema("erc8004_registration.json").iter_errors(
            {k: v for k, v in file.items() if k != "type"}
        )
    )
