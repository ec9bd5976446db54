"""A small HTTP/1.1 server for the check: asyncio protocol, ``httptools`` (llhttp) parser.

Chosen over aiohttp's low-level server for speed (README, "Auth endpoint", has the
figures): a check is a few headers in and a few out, and a request object, a header
multidict and a response object per check cost more than the check itself.

What it does, and no more: keep-alive and pipelining (replies in request order),
HTTP/1.0, bodies read and dropped, ``HEAD`` answered without a body. Bounds: a request
head (line and headers) of at most 64 KiB and 100 headers (else 431), at most 32
requests in flight per connection (reading pauses beyond), and a connection that
completes no request for ``idle_timeout_s`` is closed.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import httptools

from authz.replies import Reply

__all__ = ["Handler", "HttpServer"]

Handler = Callable[[str, str, dict[str, str]], Awaitable[Reply]]
"""``(method, target, headers with lower-case names) -> Reply``."""

_log = logging.getLogger("authz.http")
_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 100
_MAX_IN_FLIGHT = 32
_FAILED = Reply(500, "error", (("Content-Type", "application/json"),), b'{"error":"internal"}')
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _HeadTooLarge(Exception):
    pass


class _Clock:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._line = b""

    def date_line(self) -> bytes:
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
            return encode(_FAILED, False, with_body, date_line)
        parts.append(b"%s: %s\r\n" % (name.encode(), value.encode("latin-1", "replace")))
    parts.append(b"Content-Length: %d\r\n" % len(reply.body))
    parts.append(b"Connection: keep-alive\r\n\r\n" if keep_alive else b"Connection: close\r\n\r\n")
    if with_body:
        parts.append(reply.body)
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    """One client connection: parse, hand each request to the handler, reply in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._handler = server.handler
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_count = 0
        self._header_size = 0
        self._wanted = server.wanted
        self._in_head = False
        self._head_bytes = 0
        self._chunk = 0
        self._in_flight = 0
        self._last: asyncio.Task[None] | None = None
        self._closing = False
        self.last_active = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None

    def idle_since(self) -> float | None:
        """When the last request completed, or None while a request is being answered."""
        return None if self._in_flight else self.last_active

    def close(self) -> None:
        """Close at once."""
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._chunk = len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._closing = True  # answer what came, then close: no protocol switch here
        except httptools.HttpParserCallbackError as exc:
            self._refuse(_TOO_LARGE if isinstance(exc.__context__, _HeadTooLarge) else _BAD)
            return
        except httptools.HttpParserError:
            self._refuse(_BAD)
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD:
                self._refuse(_TOO_LARGE)

    def _refuse(self, response: bytes) -> None:
        self._closing = True
        if self._transport is not None and not self._in_flight:
            self._transport.write(response)
            self._transport.close()
        # else: the replies already under way go out, then the connection closes

    # --- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_count = 0
        self._header_size = 0
        self._in_head = True
        self._head_bytes = -self._chunk  # the chunk it began in is counted after feeding

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_HEAD:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counted here for a head that came in one piece, in data_received across pieces.
        self._header_count += 1
        self._header_size += len(name) + len(value)
        if self._header_count > _MAX_HEADERS or self._header_size > _MAX_HEAD:
            raise _HeadTooLarge
        key = name.lower()
        wanted = self._wanted
        if wanted is not None and key not in wanted:
            return
        text, headers = value.decode("latin-1"), self._headers
        key_text = key.decode("latin-1")
        if key_text in headers:
            headers[key_text] = f"{headers[key_text]}, {text}"  # as HTTP combines a repeated field
        else:
            headers[key_text] = text

    def on_headers_complete(self) -> None:
        self._in_head = False

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode("ascii")
        keep_alive = self._parser.should_keep_alive() and not self._closing
        if not keep_alive:
            self._closing = True  # what follows on this connection is not read
        previous = self._last if self._in_flight else None
        self._in_flight += 1
        if self._in_flight >= _MAX_IN_FLIGHT and self._transport is not None:
            self._transport.pause_reading()
        self._last = asyncio.get_running_loop().create_task(
            self._answer(method, self._url.decode("latin-1"), self._headers, keep_alive, previous)
        )

    async def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        keep_alive: bool,
        previous: asyncio.Task[None] | None,
    ) -> None:
        try:
            reply = await self._handler(method, target, headers)
        except Exception:
            _log.exception("the check failed; answered 500")  # no request detail: tokens
            reply, keep_alive = _FAILED, False
        if previous is not None:
            await asyncio.shield(previous)  # replies leave in the order requests came
        self._in_flight -= 1
        self.last_active = time.monotonic()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        keep_alive = keep_alive and not self._closing
        transport.write(encode(reply, keep_alive, method != "HEAD", self._server.clock.date_line()))
        if self._closing and not self._in_flight:
            transport.close()
        elif self._in_flight == _MAX_IN_FLIGHT - 1:
            transport.resume_reading()


class HttpServer:
    """Serves ``handler`` on ``host:port``; with port 0, ``port`` is the one the system chose."""

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        *,
        idle_timeout_s: float = 75.0,
        headers: frozenset[str] | None = None,
    ) -> None:
        self.handler = handler
        self.wanted = None if headers is None else frozenset(h.lower().encode() for h in headers)
        """The header names handed to the handler (lower case); None hands all."""
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.clock = _Clock()
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep(), name="authz-idle-sweeper")

    async def _sweep(self) -> None:
        # One timer for all connections rather than one per request.
        while True:
            await asyncio.sleep(max(0.05, self.idle_timeout_s / 4))
            deadline = time.monotonic() - self.idle_timeout_s
            for connection in list(self.connections):
                since = connection.idle_since()
                if since is not None and since < deadline:
                    connection.close()

    async def stop(self) -> None:
        """Stop listening and close every connection (replies under way are dropped)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None
