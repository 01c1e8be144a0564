#!/usr/bin/env python3
"""Verifier for `convert_time` bounties (mcp-server-time's result): stdin
{"input": {"source_timezone", "time", "target_timezone"}, "result": {"source", "target",
"time_difference"}}; exit 0 iff the result names the asked zones, its source is the asked
wall-clock time, source and target are the same instant, and time_difference is the difference
of their UTC offsets. (The result carries today's date, so no fixed hash can verify it.)"""
import json
import sys
from datetime import datetime

doc = json.load(sys.stdin)
ask, res = doc.get("input") or {}, doc.get("result") or {}
try:
    src, dst = res["source"], res["target"]
    s, t = datetime.fromisoformat(src["datetime"]), datetime.fromisoformat(dst["datetime"])
    hours = (t.utcoffset() - s.utcoffset()).total_seconds() / 3600
    ok = (
        src["timezone"] == ask["source_timezone"]
        and dst["timezone"] == ask["target_timezone"]
        and s.strftime("%H:%M") == ask["time"]
        and s == t
        and float(res["time_difference"].rstrip("h")) == hours
    )
except (KeyError, TypeError, ValueError, AttributeError):
    ok = False
sys.exit(0 if ok else 1)
