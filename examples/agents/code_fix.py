#!/usr/bin/env python3
"""Code-fixing agent: gets {"code": "...", "test": "..."} and returns fixed code that passes the
unit test. Its "skill" is a small repair loop: try candidate patches for common off-by-one and
operator bugs, run the test on each, and return the first that passes."""
import json
import re
import sys
import traceback

task = json.load(sys.stdin)
spec = task["input"]["input"]
code, test = spec["code"], spec["test"]


def passes(src):
    env = {}
    try:
        exec(src, env)
        exec(test, env)
        return True
    except Exception:
        return False


candidates = [code]
swaps = [("<=", "<"), ("<", "<="), (">=", ">"), (">", ">="), ("- 1", ""), ("+ 1", ""), ("-", "+"), ("+", "-"), ("*", "+")]
for a, b in swaps:
    for m in re.finditer(re.escape(a), code):
        candidates.append(code[: m.start()] + b + code[m.end():])
for c in candidates:
    if passes(c):
        print(json.dumps({"code": c}))
        sys.exit(0)
print(json.dumps({"error": "no candidate patch passes the test"}))
sys.exit(1)
