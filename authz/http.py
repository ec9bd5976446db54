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
import logging
import time
from collections.abc import Awaitable, Callable

import httptools

from authz.replies import Reply
from authz.wire import BAD_REQUEST, FAILED, HEAD_TOO_LARGE, DateLine, encode

__all__ = ["Handler", "HttpServer", "QuickHandler"]

Handler = Callable[[str, str, dict[str, str]], Awaitable[Reply]]
"""``(method, target, headers with lower-case names) -> Reply``."""
QuickHandler = Callable[[str, str, dict[str, str]], Reply | None]
"""The same, answered without a task (on the loop's next round), or ``None``: then the
server awaits ``Handler``, which may take it that the quick answer was tried."""

_log = logging.getLogger("authz.http")
_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 100
_MAX_IN_FLIGHT = 32


class _HeadTooLarge(Exception):
    pass


def _failed() -> tuple[Reply, bool]:
    """The reply to a check that raised (a 500, the connection's last), logged once."""
    _log.exception("the check failed; answered 500")  # no request detail: tokens
    return FAILED, False


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class _Connection(asyncio.Protocol):
    """One client connection: parse, hand each request to the handler, reply in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._handler = server.handler
        self._quick = server.quick
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
        self._last: asyncio.Future[None] | None = None
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
            self._refuse(
                HEAD_TOO_LARGE if isinstance(exc.__context__, _HeadTooLarge) else BAD_REQUEST
            )
            return
        except httptools.HttpParserError:
            self._refuse(BAD_REQUEST)
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD:
                self._refuse(HEAD_TOO_LARGE)

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
        target, headers = self._url.decode("latin-1"), self._headers
        self._in_flight += 1
        if self._in_flight >= _MAX_IN_FLIGHT and self._transport is not None:
            self._transport.pause_reading()
        previous = self._last if self._in_flight > 1 else None
        loop = asyncio.get_running_loop()
        if self._quick is None:
            self._last = loop.create_task(
                self._answer(method, target, headers, keep_alive, previous, None)
            )
            return
        # On the loop's next round, not in this callback: whatever Redis sent before this
        # request came (an invalidation, the end of the tracking connection) is handled
        # before the verdict cache answers it. A callback costs far less than a task.
        done: asyncio.Future[None] = loop.create_future()
        loop.call_soon(self._answer_soon, method, target, headers, keep_alive, previous, done)
        self._last = done

    def _answer_soon(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        keep_alive: bool,
        previous: asyncio.Future[None] | None,
        done: asyncio.Future[None],
    ) -> None:
        try:
            ready = self._quick(method, target, headers)  # type: ignore[misc]
        except Exception:
            ready, keep_alive = _failed()
        if ready is not None and (previous is None or previous.done()):
            self._finish(ready, keep_alive, method)
            done.set_result(None)
            return
        task = asyncio.get_running_loop().create_task(
            self._answer(method, target, headers, keep_alive, previous, ready)
        )
        task.add_done_callback(lambda _: _settle(done))

    async def _answer(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        keep_alive: bool,
        previous: asyncio.Future[None] | None,
        ready: Reply | None,
    ) -> None:
        reply = ready
        if reply is None:
            try:
                reply = await self._handler(method, target, headers)
            except Exception:
                reply, keep_alive = _failed()
        if previous is not None:
            await asyncio.shield(previous)  # replies leave in the order requests came
        self._finish(reply, keep_alive, method)

    def _finish(self, reply: Reply, keep_alive: bool, method: str) -> None:
        self._in_flight -= 1
        if self._send(reply, keep_alive, method) and self._in_flight == _MAX_IN_FLIGHT - 1:
            self._transport.resume_reading()  # type: ignore[union-attr]

    def _send(self, reply: Reply, keep_alive: bool, method: str) -> bool:
        """Write one reply; whether the connection stays open for more. A reply without
        keep-alive is the last: what was asked after it is dropped, as HTTP wants."""
        self.last_active = time.monotonic()
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        last = not keep_alive or (self._closing and not self._in_flight)
        date = self._server.clock.date_line()
        transport.write(encode(reply, not last, method != "HEAD", date))
        if last:
            self._closing = True
            transport.close()
            return False
        return True


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
        quick: QuickHandler | None = None,
    ) -> None:
        self.handler = handler
        self.quick = quick
        """Tried first for every request; its reply leaves at once when nothing earlier on
        the connection is still being answered, else in its turn."""
        self.wanted = None if headers is None else frozenset(h.lower().encode() for h in headers)
        """The header names handed to the handler (lower case); None hands all."""
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.clock = DateLine()
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
