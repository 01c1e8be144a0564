"""The node's retention and erasure bodies against their JSON Schemas (docs/schemas), and
permessage-deflate negotiated by an independent WebSocket implementation (`websockets`)."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import websockets
from conftest import Node, rest_login
from eth_account import Account
from eth_account.messages import encode_defunct
from jsonschema import Draft202012Validator

from reef_agent import http

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def check(name: str, value: object) -> None:
    v = Draft202012Validator(json.loads((SCHEMAS / name).read_text()))
    errors = list(v.iter_errors(value))
    assert not errors, f"{name}: {errors[0].message} in {value}"


def test_retention_and_erase_bodies_match_the_schemas(node: Node) -> None:
    async def run() -> None:
        key = "0x" + secrets.token_hex(32)
        token = await rest_login(node.http, key)
        auth = {"authorization": f"Bearer {token}"}
        g = await http.request("POST", f"{node.http}/v1/groups", {"name": "private"}, auth)
        gid = g["group_id"]
        body = {"retention_secs": 3600}
        check("group_retention.json", body)
        out = await http.request("PUT", f"{node.http}/v1/groups/{gid}/retention", body, auth)
        check("group_retention.json", out)
        assert out == {"group_id": gid, "retention_secs": 3600}
        out = await http.request(
            "PUT", f"{node.http}/v1/groups/{gid}/retention", {"retention_secs": None}, auth
        )
        check("group_retention.json", out)
        await http.request(
            "POST",
            f"{node.http}/v1/groups/{gid}/messages",
            {"msg_id": "m1", "state": "discussion", "body": {"text": "to be erased"}},
            auth,
        )
        out = await http.request("DELETE", f"{node.http}/v1/groups/{gid}/messages/mine", None, auth)
        check("group_erased.json", out)
        assert out["erased"] == 1
        assert not Draft202012Validator(
            json.loads((SCHEMAS / "group_retention.json").read_text())
        ).is_valid({"retention_secs": 0})

    asyncio.run(run())


def test_websockets_negotiates_permessage_deflate(node: Node) -> None:
    async def run() -> None:
        # `websockets` offers permessage-deflate with client_max_window_bits by default.
        async with websockets.connect(node.ws) as ws:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ext.startswith("permessage-deflate"), ext
            assert "server_max_window_bits=" in ext and "client_max_window_bits=" in ext, ext
            challenge = json.loads(await ws.recv())
            assert challenge["type"] == "challenge"
            acct = Account.create()
            sig = acct.sign_message(encode_defunct(text=challenge["message"]))
            signature = "0x" + bytes(sig.signature).hex()
            auth = {"type": "auth", "address": acct.address, "signature": signature}
            await ws.send(json.dumps(auth))
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(json.dumps({"type": "ping", "req_id": 1}))
            assert json.loads(await ws.recv()) == {"type": "pong", "req_id": 1}
        # Without an offer: plain frames.
        async with websockets.connect(node.ws, compression=None) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            assert json.loads(await ws.recv())["type"] == "challenge"

    asyncio.run(run())
