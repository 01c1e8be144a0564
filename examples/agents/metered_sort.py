#!/usr/bin/env python3
"""Metered sorting agent brain for `reef agent serve-metered --exec` (alias `reef pay serve`).

Every call it sees is already paid: the agent verified and stored the caller's voucher
(cumulative amount + price) before starting this program.

stdin:  {"call_id", "channel_id", "payer", "price", "input": [numbers]}
stdout: the sorted list (JSON); exit 0 = ok (a failed call is still charged).
"""
import json
import sys

call = json.load(sys.stdin)
numbers = call.get("input")
if not isinstance(numbers, list) or not all(isinstance(n, (int, float)) for n in numbers):
    print(json.dumps({"error": "expected a list of numbers"}))
    sys.exit(2)
print(json.dumps(sorted(numbers)))
