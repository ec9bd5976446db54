"""The bytes the auth endpoint's HTTP server writes: responses, and the canned refusals."""

from __future__ import annotations

import email.utils
import time
from http import HTTPStatus

from authz.replies import Reply

__all__ = ["BAD_REQUEST", "FAILED", "HEAD_TOO_LARGE", "DateLine", "encode"]

FAILED = Reply(500, "error", (("Content-Type", "application/json"),), b'{"error":"internal"}')
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class DateLine:
    """The Date header line, formatted once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""

    def date_line(self) -> bytes:
        """``Date: ...`` with its line end, for the current second."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: %s\r\n" % email.utils.formatdate(now, usegmt=True).encode()
        return self._line


def encode(reply: Reply, keep_alive: bool, with_body: bool, date_line: bytes) -> bytes:
    """The bytes of one response; a header value that could split the response is refused."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (reply.status, _REASONS.get(reply.status, b"")), date_line]
    for name, value in reply.headers:
        if "\r" in value or "\n" in value:
            return encode(FAILED, False, with_body, date_line)
        parts.append(b"%s: %s\r\n" % (name.encode(), value.encode("latin-1", "replace")))
    parts.append(b"Content-Length: %d\r\n" % len(reply.body))
    parts.append(b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    if with_body:
        parts.append(reply.body)
    return b"".join(parts)
