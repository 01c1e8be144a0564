"""Reef as an MCP server, driven by the official Python MCP SDK (`mcp` on PyPI).

- stdio: `reef mcp` (the bridge that signs locally) lists its tools, posts a bounty that a real
  `reef agent run` wins and delivers, and reports it paid, with progress notifications on the
  way; the bounty's timeline is readable as a resource, and its agent is discoverable with its
  reputation explained.
- streamable HTTP on the node at `/mcp`: refused without a bearer token; with one, the same
  tools answer, and a tool that would need the caller's key says to use the bridge.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from conftest import REPO, Devnet, Node, reef_bin, rest_login
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

#: anvil's dev accounts 3 (the sorting agent) and 4 (the MCP host's poster).
AGENT_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
AGENT = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
#: anvil dev account 4 (only its login token is used over HTTP).
POSTER_KEY = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"
SKILL = "mcp-sort"
TOOLS = {
    "discover_agents",
    "get_agent",
    "post_bounty",
    "bounty_status",
    "list_bounties",
    "accept_result",
    "reject_result",
    "earnings",
    "send_message",
    "read_messages",
    "call_metered_agent",
    "ask_swarm",
}
#: anvil's dev account 6: a metered sorting agent paid per call with vouchers.
METERED_KEY = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e"
METERED = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"


@pytest.fixture(scope="module")
def sort_agent(devnet: Devnet, node: Node) -> Iterator[None]:
    brain = f"python3 {REPO / 'examples/agents/sort.py'}"
    proc = subprocess.Popen(
        [
            reef_bin(),
            "agent",
            "run",
            "--node",
            node.ws,
            "--key",
            AGENT_KEY,
            "--skills",
            SKILL,
            "--rpc-url",
            devnet.rpc,
            "--bid-price",
            "3",
            "--exec",
            brain,
        ],
        cwd=REPO,
        env=dict(os.environ, RUST_LOG="warn"),
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def metered_agent(
    devnet: Devnet, node: Node, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    brain = f"python3 {REPO / 'examples/agents/metered_sort.py'}"
    state = tmp_path_factory.mktemp("metered")
    proc = subprocess.Popen(
        [
            reef_bin(),
            "pay",
            "serve",
            "--node",
            node.ws,
            "--name",
            "metered-sorter",
            "--skills",
            "sort",
            "--price",
            "0.001",
            "--token",
            "test",
            "--json",
            "--exec",
            brain,
            "--state-dir",
            str(state),
            "--key",
            METERED_KEY,
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
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def bridge(devnet: Devnet, node: Node) -> StdioServerParameters:
    return StdioServerParameters(
        command=reef_bin(),
        args=[
            "mcp",
            "--node",
            node.http,
            "--rpc-url",
            devnet.rpc,
            "--dev-account",
            "4",
            "--deployments",
            str(devnet.deployments),
        ],
        env={"RUST_LOG": "warn", "PATH": os.environ.get("PATH", "")},
        # The bridge keeps its payment-channel state under its working directory (.reef/).
        cwd=str(devnet.dir),
    )


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def wait_online(session: ClientSession) -> dict[str, Any]:
    with anyio.fail_after(60):
        while True:
            found = structured(
                await session.call_tool("discover_agents", {"skills": [SKILL], "online_only": True})
            )
            if found["agents"]:
                return found["agents"][0]
            await anyio.sleep(0.2)


def test_an_mcp_host_posts_a_bounty_through_the_bridge_and_sees_it_paid(
    devnet: Devnet, node: Node, sort_agent: None, metered_agent: None
) -> None:
    async def run() -> None:
        async with (
            stdio_client(bridge(devnet, node)) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert set(tools) == TOOLS
            assert tools["post_bounty"].input_schema["required"] == ["description", "reward"]

            agent = await wait_online(session)
            assert agent["address"].lower() == AGENT.lower()
            assert agent["card"]["skills"] == [SKILL]
            assert 0.0 <= agent["reputation"]["value"] <= 1.0, agent

            steps: list[str] = []

            async def progress(_done: float, _total: float | None, message: str | None) -> None:
                steps.append(message or "")

            out = structured(
                await session.call_tool(
                    "post_bounty",
                    {
                        "description": "Sort these numbers ascending (via MCP)",
                        "reward": "5",
                        "skills": [SKILL],
                        "input": [9, 2, 7, 1],
                        "verify": "hash",
                        "expect": [1, 2, 7, 9],
                        "bid_window": "2s",
                        "deadline": "30m",
                    },
                    read_timeout_seconds=240,
                    progress_callback=progress,
                )
            )
            assert out["paid"] is True, out
            assert out["status"] == "completed", out
            assert out["winner"].lower() == AGENT.lower(), out
            assert out["verdict"]["accept"] is True, out
            assert any("awarded" in s for s in steps), steps
            assert any(s.startswith("settled") for s in steps), steps

            # The timeline as a resource and as a tool; the agent's earnings from the chain.
            res = await session.read_resource(f"reef://bounty/{out['id']}")
            timeline = json.loads(res.contents[0].text)
            assert timeline["phase"] == "settled"
            assert next(e["event"] for e in timeline["events"]) == "posted"
            status = structured(await session.call_tool("bounty_status", {"id": out["id"]}))
            assert status["phase"] == "settled"
            earned = structured(await session.call_tool("earnings", {"address": AGENT}))
            assert any(int(p["bounty"], 16) == int(out["id"], 16) for p in earned["payouts"])

            # A metered call, paid with a voucher the bridge signs.
            metered = structured(
                await session.call_tool(
                    "call_metered_agent",
                    {"agent": METERED, "price": "0.001", "input": [3, 1, 2]},
                    read_timeout_seconds=60,
                )
            )
            assert metered["ok"] is True, metered
            assert metered["result"] == [1, 2, 3], metered
            assert metered["paid"] == str(10**15), metered

            # A failure is a tool error with the reason, and the server keeps serving.
            bad = await session.call_tool("post_bounty", {"description": "x", "reward": "-1"})
            assert bad.is_error
            assert "reward" in bad.content[0].text.lower(), bad.content
            assert structured(await session.call_tool("list_bounties", {"phase": "settled"}))[
                "bounties"
            ]

    anyio.run(run)


def test_the_node_serves_mcp_over_http_to_token_holders_only(
    devnet: Devnet, node: Node, sort_agent: None
) -> None:
    req = urllib.request.Request(
        f"{node.http}/mcp",
        data=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        headers={
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401

    async def run() -> None:
        token = await rest_login(node.http, POSTER_KEY)
        client = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
        async with (
            client,
            streamable_http_client(f"{node.http}/mcp", http_client=client) as streams,
            ClientSession(streams[0], streams[1]) as session,
        ):
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == TOOLS
            agent = await wait_online(session)
            assert agent["address"].lower() == AGENT.lower()
            refused = await session.call_tool(
                "post_bounty", {"description": "Sort", "reward": "1", "skills": [SKILL]}
            )
            assert refused.is_error
            assert "reef mcp" in refused.content[0].text, refused.content

    anyio.run(run)
