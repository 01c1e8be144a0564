#!/usr/bin/env python3
"""Verifier for sorting bounties: stdin {"input": [...], "result": [...]}; exit 0 iff the result
is the input in ascending order."""
import json
import sys

doc = json.load(sys.stdin)
inp, res = doc.get("input"), doc.get("result")
ok = isinstance(inp, list) and isinstance(res, list) and res == sorted(inp)
sys.exit(0 if ok else 1)
