"""The whole system on a throwaway Redis: the token service and the audit worker as processes.

For benchmarks that measure what the real processes leave in Redis (``bench.memory``,
``bench.soak``). The redis-server listens on a free loopback port and is removed with its
files at the end; the processes log to files in its directory (kept only while it runs).
Every wait is bounded: a process that ends, or a group that does not drain in time,
raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bench.processes import ROOT, clean_env, stop
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis
from workers.audit import EVENTS_GROUP, USAGE_GROUP

__all__ = ["ADMIN", "SERVICE_GROUP", "GroupState", "Stack"]

ADMIN = "bench"
SERVICE_GROUP = "token-service"
_START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class GroupState:
    """A consumer group's backlog: delivered but not acknowledged, and not yet delivered."""

    pending: int
    lag: int

    @property
    def settled(self) -> bool:
        """Nothing pending and nothing waiting."""
        return self.pending == 0 and self.lag == 0


@dataclass
class Stack:
    """A redis-server, ``python -m token_service`` and ``python -m workers.audit`` on it."""

    server: EmbeddedRedis
    redis: Redis
    keys: Keys = field(default_factory=Keys)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def start_redis(cls) -> Stack:
        """Only the redis-server (a real one: ``MEMORY USAGE`` means nothing on fakeredis)."""
        server = EmbeddedRedis.start()
        if server.kind != "redis-server":
            server.stop()
            raise RuntimeError("needs redis-server on PATH (apt-get install redis-server)")
        return cls(server, Redis.from_url(server.url, decode_responses=True))

    def _spawn(self, name: str, module: str, env: Mapping[str, str]) -> None:
        log = (self.server.directory / f"{name}.log").open("ab")
        with log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env={**clean_env(), "REDIS_URL": self.server.url, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def start_processes(
        self, service_env: Mapping[str, str], worker_env: Mapping[str, str] | None = None
    ) -> None:
        """The service (trusting the shared stream, ``bench`` an administrator) and the worker."""
        env = {"TOKENS_ADMINS": ADMIN, "TOKENS_TRUST_SHARED_STREAM": "true", **service_env}
        self._spawn("service", "token_service", env)
        self._spawn("audit-worker", "workers.audit", dict(worker_env or {}))
        until = time.monotonic() + _START_TIMEOUT_S
        wanted = [
            (self.keys.commands, SERVICE_GROUP),
            (self.keys.usage, USAGE_GROUP),
            (self.keys.events, EVENTS_GROUP),
        ]
        for stream, group in wanted:
            while await self.group(stream, group) is None:
                self.check_alive()
                if time.monotonic() > until:
                    raise TimeoutError(f"group {group} on {stream} not there after start")
                await asyncio.sleep(0.05)

    def check_alive(self) -> None:
        """Raise if a process has ended."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = self.server.directory / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{name} exited with code {process.returncode}:\n{tail}")

    async def group(self, stream: str, group: str) -> GroupState | None:
        """The group's backlog, or None while the stream or the group does not exist."""
        with contextlib.suppress(ResponseError):
            for info in await self.redis.xinfo_groups(stream):
                if info["name"] == group:
                    return GroupState(int(info["pending"]), int(info.get("lag") or 0))
        return None

    async def wait_settled(self, stream: str, group: str, timeout_s: float) -> float:
        """Until ``group`` has nothing pending or waiting on ``stream``; seconds it took."""
        start = time.monotonic()
        while True:
            state = await self.group(stream, group)
            if state is not None and state.settled:
                return time.monotonic() - start
            self.check_alive()
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"{group} on {stream} not settled after {timeout_s:g}s: {state}")
            await asyncio.sleep(0.1)

    async def used_memory(self) -> int:
        """``INFO memory`` ``used_memory``, in bytes."""
        info: dict[str, Any] = await self.redis.info("memory")
        return int(info["used_memory"])

    async def close(self) -> None:
        """Stop the processes (SIGTERM, then SIGKILL), then Redis, and remove its files."""
        for process in self.processes.values():
            await asyncio.to_thread(stop, process)
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        self.server.stop()
