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
from conftest import DEV_KEYS, Devnet, Node, rest_login, running_node

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
    assert figures.get("operations_tested", 0) >= 20, out[-4000:]
    assert figures.get("test_cases", 0) > 0, out[-4000:]
