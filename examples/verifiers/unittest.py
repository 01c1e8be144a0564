#!/usr/bin/env python3
"""Verifier for code-fix bounties: runs the poster's unit test against the returned code.
stdin {"input": {"code", "test"}, "result": {"code"}}; exit 0 iff the test passes."""
import json
import sys

doc = json.load(sys.stdin)
try:
    env = {}
    exec(doc["result"]["code"], env)
    exec(doc["input"]["test"], env)
except Exception as e:  # noqa: BLE001 - any failure rejects
    print(f"test failed: {e!r}", file=sys.stderr)
    sys.exit(1)
sys.exit(0)
