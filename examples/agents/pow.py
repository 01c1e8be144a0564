#!/usr/bin/env python3
"""Proof-of-work agent: find a nonce such that sha256(prefix + nonce) starts with `zeros` hex zeros.
stdin task: {"input": {"input": {"prefix": "...", "zeros": 4}}}; stdout: {"nonce": N, "hash": "..."}"""
import hashlib
import json
import sys

task = json.load(sys.stdin)
spec = task["input"]["input"]
prefix, zeros = spec["prefix"], int(spec["zeros"])
nonce = 0
while True:
    h = hashlib.sha256(f"{prefix}{nonce}".encode()).hexdigest()
    if h.startswith("0" * zeros):
        print(json.dumps({"nonce": nonce, "hash": h}))
        break
    nonce += 1
