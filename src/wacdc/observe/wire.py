"""HTTP/1.x on the wire for the daemon's server: request heads parsed, responses built."""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from wacdc import __version__

MAX_HEAD = 16 * 1024  # request line and headers
MAX_HEADERS = 100
MAX_BODY = 1024  # largest Content-Length a POST may declare (the body is not read)


def response(code: int, body: bytes, content_type: str,
              extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [f"HTTP/1.0 {code} {HTTPStatus(code).phrase}", f"Server: wacdc/{__version__}",
             f"Date: {formatdate(usegmt=True)}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_response(code: int, document: dict[str, Any],
          extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    return response(code, (json.dumps(document, indent=2) + "\n").encode(),
                     "application/json", extra)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names as sent; the first of a repeated header
    lengths: set[str]  # every Content-Length value given
    query: str = ""  # after the path's "?" (POST /cutover?bridge=1&bridge_max=600)


def parse(head: bytes) -> Request | bytes:
    """The request head, or the error response when it is not HTTP/1.x."""
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].rstrip("\r").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return json_response(400, {"error": "bad request line"})
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        return json_response(505, {"error": "HTTP/1.0 or HTTP/1.1 only"})
    headers: dict[str, str] = {}
    lengths: set[str] = set()
    for count, raw in enumerate(lines[1:]):
        line = raw.rstrip("\r")
        if not line:
            break
        if count >= MAX_HEADERS:
            return json_response(431, {"error": f"more than {MAX_HEADERS} headers"})
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            return json_response(400, {"error": "malformed header line"})
        value = value.strip()
        if name.lower() == "content-length":
            lengths.add(value)
        headers.setdefault(name, value)
    path, _, query = target.partition("?")
    return Request(method, path, headers, lengths, query)


def body_problem(request: Request) -> bytes | None:
    """Why a POST's declared body is refused (decided on the headers alone), or None."""
    if any(name.lower() == "transfer-encoding" for name in request.headers):
        return json_response(411, {"error": "POST takes no body: send Content-Length: 0 (no "
                                    "chunked transfer encoding)"})
    if len(request.lengths) > 1:
        return json_response(400, {"error": "conflicting Content-Length headers"})
    if not request.lengths:
        return None
    value = next(iter(request.lengths))
    if not (value.isascii() and value.isdigit()):
        return json_response(400, {"error": "Content-Length must be a non-negative integer"})
    if len(value.lstrip("0")) > 9 or int(value) > MAX_BODY:
        return json_response(413, {"error": f"POST takes no body (at most {MAX_BODY} bytes are "
                                    "accepted, and ignored)"})
    return None
