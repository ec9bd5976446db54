"""The process the auth benchmarks measure: one HTTP server, one handler, on one port.

``python -m bench.authz_target --server httptools|aiohttp --handler check|trivial --port N``
with the endpoint's settings in the environment (``REDIS_URL``, ``AUTHZ_ROUTES_FILE``...).

- ``httptools``: the endpoint's own server (:class:`authz.http.HttpServer`);
- ``aiohttp``: aiohttp's low-level server (``aiohttp.web.Server``: no router, no
  application), the other candidate, kept here so the choice can be measured again.

``check`` is the endpoint's real check (verifier, usage reporter, routes); ``trivial``
answers every request with a constant 200 of the same shape as an accepted check, so
that the two differ by the check alone. It prints ``listening`` once it accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Mapping

from aiohttp import web

from authz.app import build_endpoint
from authz.http import Handler, HttpServer
from authz.replies import Reply
from authz.settings import AuthzSettings

__all__ = ["main"]

_TRIVIAL = Reply(200, "accepted", (("X-Token-Id", "01TRIVIAL"), ("X-Token-Scopes", "a:read")))


async def trivial(_method: str, _target: str, _headers: Mapping[str, str]) -> Reply:
    """The baseline handler: the same reply every time, no I/O."""
    return _TRIVIAL


def trivial_now(_method: str, _target: str, _headers: Mapping[str, str]) -> Reply:
    """The same, answered in the turn that read the request, as the check answers a
    cached key: the baseline takes every shortcut the check takes."""
    return _TRIVIAL


async def _aiohttp_server(handler: Handler, port: int) -> asyncio.Server:
    async def serve(request: web.BaseRequest) -> web.Response:
        # aiohttp's headers are case-insensitive already: no copy is needed.
        reply = await handler(request.method, request.raw_path, request.headers)  # type: ignore[arg-type]
        return web.Response(status=reply.status, headers=dict(reply.headers), body=reply.body)

    server = web.Server(serve, access_log=None)
    return await asyncio.get_running_loop().create_server(server, "127.0.0.1", port, backlog=1024)


async def _run(server_kind: str, handler_kind: str, port: int) -> None:
    endpoint = build_endpoint(AuthzSettings(http_port=None))
    handler: Handler = endpoint.check if handler_kind == "check" else trivial
    await endpoint.reporter.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    if server_kind == "httptools":
        # As the endpoint serves: the same-turn answer first, the awaited one after it.
        check = endpoint.check
        quick = check.answer_now if handler_kind == "check" else trivial_now
        later = check.answer_later if handler_kind == "check" else trivial
        own = HttpServer(later, "127.0.0.1", port, headers=check.header_names, quick=quick)
        await own.start()
        print("listening", flush=True)
        await stop.wait()
        await own.stop()
    else:
        other = await _aiohttp_server(handler, port)
        print("listening", flush=True)
        await stop.wait()
        other.close()
    await endpoint.reporter.close()
    await endpoint.redis.aclose()


def main() -> None:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.authz_target")
    parser.add_argument("--server", choices=["httptools", "aiohttp"], default="httptools")
    parser.add_argument("--handler", choices=["check", "trivial"], default="check")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    asyncio.run(_run(options.server, options.handler, options.port))


if __name__ == "__main__":
    main()
