"""The node's OpenAPI description (`GET /v1/openapi.json`, docs/openapi.md) against the node
itself: schemathesis generates requests for every described operation of a live node (anvil,
Reef deployed, `reef node` with its marketplace) and checks that none is answered with a 5xx,
and that every answer's status, content type and body are as described.

Left out of the fuzzing, on purpose: `GET /v1/ws` (a WebSocket upgrade; its frames are checked
by test_conformance.py against docs/schemas) and `/mcp` (the MCP streamable-HTTP transport,
JSON-RPC over a session; test_mcp.py drives it with a real MCP client), and
`GET /v1/dashboard/live` (the dashboard's server-sent-event stream: an answer that never ends,
so every request would wait out the timeout; the dashboard's browser test,
`cargo test -p marketplace-node --test dashboard`, reads it and checks its limit)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DEV_KEYS, Devnet, Node, poll, rest_login, running_node

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
#: Test cases per operation and phase; fuzzing and stateful testing repeat within the time
#: budget (REEF_API_TEST_SECS, 60 s), so the step takes about a minute and a half.
MAX_EXAMPLES = int(os.environ.get("REEF_API_TEST_EXAMPLES", "25"))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture(scope="module")
def api_node(devnet: Devnet) -> Iterator[Node]:
    # Its own node (the fuzzer registers cards and groups), with a rate limit the fuzzer's
    # pace does not hit: 429s would hide the answers under test.
    unlimited = ["--rate-per-sec", "100000", "--rate-burst", "100000"]
    with running_node(devnet, "api-test", *unlimited) as n:
        yield n


def fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


def test_the_description_is_served_and_names_every_route(api_node):
    doc = fetch_json(f"{api_node.http}/v1/openapi.json")
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    ops = {(m, p) for p, item in doc["paths"].items() for m in item}
    for op in [
        ("get", "/v1/health"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/groups"),
        ("get", "/v1/market/bounties/{id}"),
        ("post", "/v1/market/bounties/{id}/bids"),
        ("get", "/metrics"),
        ("post", "/mcp"),
        ("get", "/v1/ws"),
        ("get", "/"),
        ("get", "/dashboard/{file}"),
        ("post", "/v1/dashboard/session"),
        ("get", "/v1/dashboard/bounties/{id}"),
        ("get", "/v1/dashboard/live"),
    ]:
        assert op in ops, op
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert (schemes["session"]["in"], schemes["session"]["name"]) == ("cookie", "reef_session")


def summary(output: str) -> dict[str, int]:
    """Operations tested, test cases generated and failures, from schemathesis' summary."""
    figures = {}
    tail = output.split("SUMMARY")[-1]
    for key, pattern in [
        ("operations_tested", r"Tested:\s+(\d+)"),
        ("test_cases", r"(\d+) generated"),
        ("failures", r"(\d+) failures?"),
    ]:
        m = re.search(pattern, tail)
        figures[key] = int(m.group(1)) if m else 0
    return figures


def run_schemathesis(location: str, cwd: Path, *args: str) -> tuple[int, str]:
    """Runs `schemathesis run` in `cwd` (where it keeps its cache): (exit code, output)."""
    if not SCHEMATHESIS.is_file():
        pytest.fail(f"{SCHEMATHESIS} not found: `make python-deps` installs it")
    cmd = [str(SCHEMATHESIS), "run", location, "--no-color", *args]
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=150, check=False)
    return run.returncode, run.stdout + run.stderr


def test_schemathesis_catches_an_answer_off_the_description(api_node, tmp_path):
    # The control: a description that says `v` of /v1/health is a string is caught.
    doc = fetch_json(f"{api_node.http}/v1/openapi.json")
    doc["components"]["schemas"]["Health"]["properties"]["v"] = {"type": "string"}
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(doc))
    code, out = run_schemathesis(
        str(wrong),
        tmp_path,
        "--url",
        api_node.http,
        "--include-path",
        "/v1/health",
        "--checks",
        CHECKS,
        "--max-examples",
        "3",
        "--phases",
        "examples,coverage,fuzzing",
    )
    assert code != 0, out[-4000:]
    assert "Response violates schema" in out, out[-4000:]


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_description(api_node, tmp_path):
    token = asyncio.run(rest_login(api_node.http, DEV_KEYS[0]))
    code, out = run_schemathesis(
        f"{api_node.http}/v1/openapi.json",
        tmp_path,
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        os.environ.get("REEF_API_TEST_SEED", "20"),
        "--header",
        f"Authorization: Bearer {token}",
        "--exclude-path",
        "/v1/ws",
        "--exclude-path",
        "/mcp",
        # Server-sent events: the answer never ends (see the module's docstring).
        "--exclude-path",
        "/v1/dashboard/live",
        "--request-timeout",
        "40",
        "--max-time",
        os.environ.get("REEF_API_TEST_SECS", "60"),
    )
    figures = summary(out)
    print(f"schemathesis: {figures}")
    assert code == 0, f"schemathesis found problems ({figures}):\n{out[-12000:]}"
    assert figures.get("operations_tested", 0) >= 30, out[-4000:]
    assert figures.get("test_cases", 0) > 0, out[-4000:]


def described_json(doc: dict, method: str, path: str, status: str = "200") -> dict:
    """The schema the description gives the JSON answer `status` of `method path`, as a schema
    of its own: the document's components ride along so its `#/components/...` refs resolve."""
    schema = doc["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]
    return {**schema, "components": doc["components"]}


def test_the_dashboard_answers_about_a_settled_bounty_are_as_described(lifecycle, node):
    """The fuzzer above meets an empty market. Here the dashboard's JSON about a real, settled
    bounty (as a stranger, its poster and its provider see it, by bearer token and by session
    cookie) is validated against the description, so the rich answers are checked too."""
    from jsonschema import Draft202012Validator

    doc = fetch_json(f"{node.http}/v1/openapi.json")
    bounty_id = lifecycle["payouts"][0].bounty_id
    provider = lifecycle["agent"]
    poster_token = asyncio.run(rest_login(node.http, DEV_KEYS[0]))
    provider_token = asyncio.run(rest_login(node.http, DEV_KEYS[1]))

    def call(method: str, url: str, headers: dict[str, str], body: bytes | None = None):
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, url
            ctype = r.headers.get("Content-Type", "")
            assert ctype.split(";")[0] == "application/json", (url, ctype)
            return json.loads(r.read()), r.headers

    checked: set[str] = set()

    def read(path: str, concrete: str, headers: dict[str, str]) -> dict:
        body, _ = call("GET", f"{node.http}{concrete}", headers)
        errors = list(Draft202012Validator(described_json(doc, "get", path)).iter_errors(body))
        assert not errors, f"GET {concrete}: {[e.message for e in errors][:5]}"
        checked.add(path)
        return body

    stranger: dict[str, str] = {}
    poster = {"Authorization": f"Bearer {poster_token}"}
    page = "/v1/dashboard/bounties/{id}"
    market = read("/v1/dashboard/market", "/v1/dashboard/market", stranger)
    assert market["market"] is True and any(b["id"] == bounty_id for b in market["bounties"])
    read("/v1/dashboard/bounties", "/v1/dashboard/bounties?phase=settled", stranger)

    async def indexed() -> dict | None:
        # The embedded indexer follows the chain: wait for the payout's event.
        body, _ = call("GET", f"{node.http}/v1/dashboard/bounties/{bounty_id}", stranger)
        return body if body["payout"] is not None else None

    asyncio.run(poll("the payout in the bounty's on-chain history", indexed))
    public = read(page, f"/v1/dashboard/bounties/{bounty_id}", stranger)
    assert public["summary"]["phase"] == "settled"
    assert (public["ranking"], public["input"], public["conversation"]) == (None, None, None)
    assert public["transactions"] and public["payout"] is not None, public["transactions"]
    mine = read(page, f"/v1/dashboard/bounties/{bounty_id}", poster)
    assert mine["is_poster"] and mine["ranking"] and mine["input"] == [5, 3, 9, 1], mine["ranking"]
    theirs = read(
        page, f"/v1/dashboard/bounties/{bounty_id}", {"Authorization": f"Bearer {provider_token}"}
    )
    assert theirs["is_provider"] and theirs["ranking"] is None and theirs["input"] is not None
    read("/v1/dashboard/agents", "/v1/dashboard/agents", stranger)
    read("/v1/dashboard/agents", "/v1/dashboard/agents?q=sort", stranger)
    agent = read("/v1/dashboard/agents/{address}", f"/v1/dashboard/agents/{provider}", stranger)
    assert any(b["id"] == bounty_id for b in agent["bounties"]), agent["bounties"]

    # The session: the poster's token traded for the cookie, which then stands for it.
    login, headers = call(
        "POST",
        f"{node.http}/v1/dashboard/session",
        {"Content-Type": "application/json"},
        json.dumps({"token": poster_token}).encode(),
    )
    session = described_json(doc, "post", "/v1/dashboard/session")
    assert not list(Draft202012Validator(session).iter_errors(login)), login
    cookie = headers["Set-Cookie"].split(";")[0]
    assert cookie == f"reef_session={poster_token}", headers["Set-Cookie"]
    by_cookie = {"Cookie": cookie}
    me = read("/v1/dashboard/session", "/v1/dashboard/session", by_cookie)
    assert me["address"].lower() == login["address"].lower()
    groups = read("/v1/dashboard/groups", "/v1/dashboard/groups", by_cookie)
    work_group = mine["work_group"]
    assert work_group and any(g["group_id"] == work_group for g in groups["groups"]), groups
    transcript = read("/v1/dashboard/groups/{id}", f"/v1/dashboard/groups/{work_group}", by_cookie)
    assert transcript["messages"], transcript
    assert read("/v1/dashboard/groups", "/v1/dashboard/groups", stranger) == {"groups": []}
    print(f"dashboard answers checked against the description: {len(checked)} operations")
    assert len(checked) == 8, checked
    # The control: the same page with a phase the description does not name is refused.
    wrong = {**public, "summary": {**public["summary"], "phase": "lost"}}
    assert list(Draft202012Validator(described_json(doc, "get", page)).iter_errors(wrong))
