#!/usr/bin/env python3
"""A swarm brain for `reef swarm serve --exec`: answers "What is A op B?" questions.

Reads {"query_id","poster","skill","question","price"} on stdin, prints the answer (JSON) on
stdout. A question it cannot answer exits 1: no answer is sent and the runner-up gets the award.
"""

import json
import re
import sys
from fractions import Fraction

OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "x": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else None,
}


def main() -> int:
    query = json.loads(sys.stdin.readline())
    m = re.search(r"(-?\d+(?:\.\d+)?)\s*([-+*x/])\s*(-?\d+(?:\.\d+)?)", str(query.get("question", "")))
    if not m:
        print("no arithmetic in the question", file=sys.stderr)
        return 1
    a, op, b = Fraction(m.group(1)), m.group(2), Fraction(m.group(3))
    value = OPS[op](a, b)
    if value is None:
        print("division by zero", file=sys.stderr)
        return 1
    print(json.dumps(int(value) if value.denominator == 1 else float(value)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
