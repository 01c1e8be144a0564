#!/usr/bin/env python3
"""Nested-work agent: wins a large sorting bounty, splits the list in two, posts each half as a
sub-bounty through the same marketplace, and merges the results.

The sub-bounties are funded from this agent's pending reward on the bounty it won
(`reef bounty post --from-reward`): nothing is paid up front, the sub-providers are paid in
pledge credits that redeem once the parent bounty settles (`reef agent run` redeems them). Set
SPLIT_FUNDING=wallet to pay them from the agent's wallet instead.

Needs (set by `reef agent run --share-key-with-brain`): REEF_BIN, REEF_NODE_HTTP, REEF_RPC_URL,
REEF_DEPLOYMENTS, REEF_PRIVATE_KEY."""
import heapq
import json
import os
import subprocess
import sys

task = json.load(sys.stdin)
numbers = task["input"]["input"]
parent = task["input"]["bounty_id"]
funding = os.environ.get("SPLIT_FUNDING", "reward")
half = len(numbers) // 2
parts = [numbers[:half], numbers[half:]]


def sub_bounty(part):
    cmd = [
        os.environ["REEF_BIN"], "bounty", "post", f"Sort {len(part)} numbers (sub-task)",
        "--reward", "3.5", "--token", "test", "--node", os.environ["REEF_NODE_HTTP"],
        "--skills", "sort", "--bid-window", "2s", "--deadline", "10m", "--approve",
        "--verify", "command", "--verifier", "sorted", "--input", json.dumps(part),
        "--rpc-url", os.environ["REEF_RPC_URL"], "--deployments", os.environ["REEF_DEPLOYMENTS"], "--json",
    ]
    if funding == "reward":
        cmd += ["--from-reward", parent]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "RUST_BACKTRACE": "0"})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[:800])
    res = json.loads(out.stdout)
    if res.get("status") != "completed":
        raise RuntimeError(f"sub-bounty ended {res}")
    return res["verdict"]["result"], res["id"]


# One after the other: both sub-bounties are posted from this agent's key, and two processes
# sending from one key at once would race for the same nonce.
results = [sub_bounty(p) for p in parts]
merged = list(heapq.merge(results[0][0], results[1][0]))
print(json.dumps(merged))
print(json.dumps({"sub_bounties": [r[1] for r in results]}), file=sys.stderr)
