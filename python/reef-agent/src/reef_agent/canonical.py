"""The canonical JSON behind a result hash (docs/earning.md, section 8).

`result_hash(v) = keccak256(canonical_json(v))`, byte for byte what a Reef node computes
(`market/verify.rs`): object keys sorted, no whitespace, strings escaped only where JSON
requires, integers in [-2**63, 2**64) as digits, other numbers as doubles in the node's format.
"""

from __future__ import annotations

import json
import math
from typing import Any

from eth_utils import keccak

_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1


def _float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not representable in JSON")
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that read back to the same double; re-lay them out.
    mant, _, exp_s = repr(abs(x)).partition("e")
    exp = int(exp_s) if exp_s else 0
    int_part, _, frac_part = mant.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # Exponent of the first significant digit.
    if int_part.strip("0"):
        e = len(int_part.lstrip("0")) - 1 + exp
    else:
        e = -(len(frac_part) - len(frac_part.lstrip("0"))) - 1 + exp
    digits = digits.rstrip("0") or "0"
    n = len(digits)
    if -5 <= e <= 15:
        if n - 1 <= e:
            return f"{sign}{digits}{'0' * (e - n + 1)}.0"
        if e >= 0:
            return f"{sign}{digits[: e + 1]}.{digits[e + 1 :]}"
        return f"{sign}0.{'0' * (-e - 1)}{digits}"
    body = digits[0] + ("." + digits[1:] if n > 1 else "")
    return f"{sign}{body}e{'+' if e >= 0 else '-'}{abs(e)}"


def _encode(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v) if _I64_MIN <= v <= _U64_MAX else _float(float(v)))
    elif isinstance(v, float):
        out.append(_float(v))
    elif isinstance(v, str):
        out.append(json.dumps(v, ensure_ascii=False))
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(v, dict):
        out.append("{")
        keys = sorted(v, key=lambda k: k.encode("utf-8") if isinstance(k, str) else k)
        for i, k in enumerate(keys):
            if not isinstance(k, str):
                raise TypeError(f"object keys must be strings, not {type(k).__name__}")
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _encode(v[k], out)
        out.append("}")
    else:
        raise TypeError(f"{type(v).__name__} is not a JSON value")


def canonical_json(v: Any) -> bytes:
    """The canonical UTF-8 bytes of a JSON value."""
    out: list[str] = []
    _encode(v, out)
    return "".join(out).encode("utf-8")


def result_hash(v: Any) -> str:
    """`0x`-hex keccak256 of the canonical JSON of `v`: the on-chain `resultHash`."""
    return "0x" + keccak(canonical_json(v)).hex()
