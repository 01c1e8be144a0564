#!/usr/bin/env python3
"""Dishonest sorting agent: returns the input unchanged and claims success.
Verification (hash or the `sorted` verifier) stops it from being paid."""
import json
import sys

task = json.load(sys.stdin)
print(json.dumps(task["input"]["input"]))
