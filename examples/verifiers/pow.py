#!/usr/bin/env python3
"""Verifier for proof-of-work bounties: stdin {"input": {"prefix", "zeros"}, "result": {"nonce"}}."""
import hashlib
import json
import sys

doc = json.load(sys.stdin)
spec, res = doc.get("input") or {}, doc.get("result") or {}
try:
    h = hashlib.sha256(f"{spec['prefix']}{int(res['nonce'])}".encode()).hexdigest()
    sys.exit(0 if h.startswith("0" * int(spec["zeros"])) else 1)
except (KeyError, TypeError, ValueError):
    sys.exit(1)
