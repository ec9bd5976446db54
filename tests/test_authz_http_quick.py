"""The HTTP server's same-turn path: a reply known at once costs no task, and order holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import pytest

from authz.http import HttpServer
from authz.replies import Reply
from tests.test_authz_http import _exchange


def _seen(how: str, method: str, target: str) -> Reply:
    text = f"{how} {method} {target}"
    return Reply(200, "accepted", (("X-Seen", text),), text.encode())


@dataclass
class _Handlers:
    """Answers /slow only by the awaited path; records which path answered what."""

    quick_calls: list[str] = field(default_factory=list)
    awaited_calls: list[str] = field(default_factory=list)

    def quick(self, method: str, target: str, _headers: Mapping[str, str]) -> Reply | None:
        self.quick_calls.append(target)
        if target == "/boom":
            raise RuntimeError("a bug in the check")
        return None if target == "/slow" else _seen("quick", method, target)

    async def awaited(self, method: str, target: str, _headers: Mapping[str, str]) -> Reply:
        self.awaited_calls.append(target)
        if target == "/slow":
            await asyncio.sleep(0.2)
        return _seen("awaited", method, target)


@pytest.fixture
async def handlers() -> _Handlers:
    return _Handlers()


@pytest.fixture
async def server(handlers: _Handlers) -> AsyncIterator[HttpServer]:
    running = HttpServer(handlers.awaited, "127.0.0.1", 0, quick=handlers.quick)
    await running.start()
    yield running
    await running.stop()


async def test_a_reply_known_at_once_is_sent_without_the_awaited_handler(
    server: HttpServer, handlers: _Handlers
) -> None:
    answer = await _exchange(server, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert answer.count(b"X-Seen: quick GET") == 2
    assert handlers.awaited_calls == []


async def test_nothing_overtakes_a_reply_still_awaited(
    server: HttpServer, handlers: _Handlers
) -> None:
    raw = b"GET /a HTTP/1.1\r\n\r\nGET /slow HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
    answer = await _exchange(server, raw)
    seen = [line for line in answer.split(b"\r\n") if line.startswith(b"X-Seen")]
    assert seen == [
        b"X-Seen: quick GET /a",
        b"X-Seen: awaited GET /slow",
        b"X-Seen: quick GET /b",
    ]
    # /b was answered at once, but its reply waited for /slow's to leave first.
    assert handlers.quick_calls == ["/a", "/slow", "/b"]
    assert handlers.awaited_calls == ["/slow"]


async def test_a_failing_quick_answer_is_a_500_and_the_connection_closes(
    server: HttpServer,
) -> None:
    answer = await _exchange(server, b"GET /boom HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert b"Connection: close" in answer
    assert b"quick GET /a" not in answer
