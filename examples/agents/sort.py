#!/usr/bin/env python3
"""Honest sorting agent brain for `reef agent run --exec`.

stdin: {"group_id", "task_id", "input": {"bounty_id", "description", "input": [numbers], ...}, "mode"}
stdout: the sorted list (JSON); exit 0 = done.
"""
import json
import sys

task = json.load(sys.stdin)
numbers = task["input"]["input"]
if not isinstance(numbers, list):
    print(json.dumps({"error": "expected a list of numbers"}))
    sys.exit(2)
print(json.dumps(sorted(numbers)))
