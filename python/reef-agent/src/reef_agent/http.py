"""A tiny JSON-over-HTTP client on the standard library, run off the event loop."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any


class HttpError(Exception):
    """The server answered with an error status (`body` is its JSON answer, if any)."""

    def __init__(self, status: int, method: str, url: str, body: Any) -> None:
        self.status = status
        self.body = body
        code = body.get("code") or body.get("error") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else body
        self.code: str | None = code
        super().__init__(f"{method} {url} answered {status} {code or ''}: {message}")


class Unreachable(Exception):
    """No HTTP answer at all (the server is down or the address is wrong)."""


def _request(method: str, url: str, body: Any, headers: dict[str, str], timeout: float) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        raise HttpError(e.code, method, url, parsed) from None
    except (urllib.error.URLError, OSError) as e:
        raise Unreachable(f"{method} {url}: {e}") from None


async def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> Any:
    """`method url` with a JSON body; the JSON answer. Raises HttpError or Unreachable."""
    return await asyncio.to_thread(_request, method, url, body, headers or {}, timeout)
