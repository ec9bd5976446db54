"""What the auth benchmarks share: a Redis with tokens, and the measured process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from bench.processes import ROOT, clean_env, spawn, stop
from bench.verify import store_tokens
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis, free_port

__all__ = [
    "CHECK_HEADERS",
    "ROUTES",
    "Stage",
    "cpu_seconds",
    "stage",
    "target",
    "wait_listening",
]

ROUTES = ROOT / "deploy" / "authz" / "routes.toml"
CHECK_HEADERS = {"X-Original-URI": "/api/entities/42", "X-Original-Method": "GET"}
"""What nginx would send: a GET of /api/entities/..., which needs entities:read."""
TOKENS = 100


@dataclass(frozen=True, slots=True)
class Stage:
    """A Redis holding ``tokens`` (each with ``entities:read``), and the environment for
    the measured process."""

    redis: EmbeddedRedis
    tokens: list[str]
    env: dict[str, str]


async def _tokens(url: str) -> list[str]:
    redis = Redis.from_url(url)
    try:
        return await store_tokens(redis, Keys("tokens"), TOKENS)
    finally:
        await redis.aclose()


@contextmanager
def stage() -> Iterator[Stage]:
    """A throwaway redis-server on a free loopback port, with tokens stored."""
    server = EmbeddedRedis.start()
    try:
        tokens = asyncio.run(_tokens(server.url))
        env = {
            **clean_env(),
            "REDIS_URL": server.url,
            "AUTHZ_ROUTES_FILE": str(ROUTES),
            "AUTHZ_HTTP_PORT": "0",
        }
        yield Stage(server, tokens, env)
    finally:
        server.stop()


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Return once ``port`` accepts; fail if ``process`` exits first or 15 s pass."""
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the measured process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def target(env: dict[str, str], server: str, handler: str) -> Iterator[tuple[int, int]]:
    """``python -m bench.authz_target`` on a free port; yields the port and the process id,
    stops it after."""
    port = free_port()
    args = ["-m", "bench.authz_target", "--server", server, "--handler", handler]
    process = spawn([*args, "--port", str(port)], env)
    try:
        wait_listening(port, process)
        yield port, process.pid
    finally:
        stop(process)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, from ``/proc`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
