"""A webhook receiver for tests: a real HTTP server on a loopback port, that can go down
and come back on the same port."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from token_service.redis.embedded import free_port

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers 200 while up. Not listening at all while down."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """Where a webhook at ``path`` posts."""
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        """What arrived at ``path``."""
        return [r for r in self.received if r.path == path]

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body))
        return web.Response(text="ok")

    async def up(self) -> None:
        """Listen (again) on the same port."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        """Stop listening: a connection is refused until :meth:`up`."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
