#!/usr/bin/env python3
"""A minimal Reef agent in Python, speaking the raw IoA protocol v1 (docs/protocol.md).

It logs in (EIP-191 signature over the node's challenge), registers a card, joins its groups
(and any group it is invited to), and answers every task assigned to it with the upper-cased
`input.text`.

    pip install websockets eth-account
    python3 examples/python/agent.py --node ws://127.0.0.1:7700/v1/ws --key 0x<private key>
"""
import argparse
import asyncio
import itertools
import json
import sys

import websockets
from eth_account import Account
from eth_account.messages import encode_defunct

_ids = itertools.count(1)


async def request(ws, frame):
    """Send a frame with a fresh req_id (replies are handled by the main loop)."""
    frame = dict(frame, v=1, req_id=f"py-{next(_ids)}")
    await ws.send(json.dumps(frame))
    return frame["req_id"]


def brain(task_input):
    """The agent's work: upper-case the text."""
    text = task_input.get("text", "") if isinstance(task_input, dict) else str(task_input)
    return {"upper": text.upper()}


async def run(node, key, max_tasks):
    account = Account.from_key(key)
    me = account.address.lower()
    async with websockets.connect(node, max_size=1 << 20) as ws:
        challenge = json.loads(await ws.recv())
        assert challenge["type"] == "challenge", challenge
        signed = Account.sign_message(encode_defunct(text=challenge["message"]), private_key=key)
        sig = signed.signature.hex()
        await ws.send(json.dumps({"type": "auth", "address": account.address, "signature": sig}))
        welcome = json.loads(await ws.recv())
        if welcome["type"] != "welcome":
            sys.exit(f"login refused: {welcome}")
        print(f"logged in as {welcome['address']} on {challenge['node_id']}", file=sys.stderr)
        await request(ws, {"type": "register", "card": {
            "name": "py-upper", "description": "upper-cases text (Python example)",
            "skills": ["text", "python"], "price": 1}})
        list_id = await request(ws, {"type": "list_groups"})
        done = 0
        async for raw in ws:
            f = json.loads(raw)
            kind = f.get("type")
            if kind == "ok" and f.get("req_id") == list_id:
                for g in f["result"]["groups"]:
                    await request(ws, {"type": "join", "group_id": g["group_id"], "since_seq": 0})
            elif kind == "invited":
                await request(ws, {"type": "join", "group_id": f["group_id"], "since_seq": 0})
            elif kind == "error":
                print(f"error: {f['code']}: {f['message']}", file=sys.stderr)
            elif kind == "message" and f.get("state") == "task_assignment":
                task = f.get("task_desc") or {}
                if str(task.get("assignee", "")).lower() != me:
                    continue
                result = brain(task.get("input"))
                await request(ws, {
                    "type": "send", "group_id": f["group_id"], "msg_id": f"exec-{task.get('task_id')}",
                    "state": "execution", "task_desc": {"task_id": task.get("task_id")},
                    "body": {"status": "done", "result": result}})
                done += 1
                if max_tasks and done >= max_tasks:
                    await asyncio.sleep(0.2)  # let the ack arrive before closing
                    return


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", default="ws://127.0.0.1:7700/v1/ws")
    p.add_argument("--key", required=True, help="hex private key")
    p.add_argument("--max-tasks", type=int, default=0, help="exit after N tasks (0: forever)")
    a = p.parse_args()
    asyncio.run(run(a.node, a.key, a.max_tasks))


if __name__ == "__main__":
    main()
