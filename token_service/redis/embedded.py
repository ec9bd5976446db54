"""A throwaway Redis on a free loopback port: for ``make run`` without ``REDIS_URL``, and tests.

A real ``redis-server`` when the binary is on ``PATH``; otherwise fakeredis's TCP server
in a thread, which is enough to try the service but not to trust delivery under faults.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["EmbeddedRedis", "free_port"]

_ONCE = Retry(NoBackoff(), 0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(port: int, deadline_s: float = 10.0) -> None:
    until = time.monotonic() + deadline_s
    while True:
        try:
            # No retries: redis-py retries a refused login (NOAUTH) for seconds otherwise.
            with redis.Redis(port=port, socket_connect_timeout=0.2, retry=_ONCE) as client:
                client.ping()
                return
        except (redis.AuthenticationError, redis.ResponseError):
            return  # it answers, but only to a user it knows (an ACL with the default user off)
        except redis.ConnectionError:
            if time.monotonic() > until:
                raise
            time.sleep(0.02)


@dataclass
class EmbeddedRedis:
    """One Redis this process started; ``stop`` ends it and removes its files."""

    port: int
    kind: str
    directory: Path
    appendonly: bool = False
    appendfsync: str = "always"
    extra_args: tuple[str, ...] = ()
    """More ``redis-server`` arguments, such as ``("--aclfile", path)``."""
    _process: subprocess.Popen[bytes] | None = None
    _server: Any = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Where to connect."""
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(
        cls,
        *,
        appendonly: bool = False,
        appendfsync: str = "always",
        extra_args: tuple[str, ...] = (),
        prefer_real: bool = True,
    ) -> EmbeddedRedis:
        """Start a server on a free port and wait until it answers."""
        directory = Path(tempfile.mkdtemp(prefix="token-service-redis-"))
        binary = shutil.which("redis-server")
        if binary and prefer_real:
            server = cls(
                free_port(), "redis-server", directory, appendonly, appendfsync, extra_args
            )
            server.launch()
            return server
        from fakeredis import TcpFakeServer

        port = free_port()
        fake = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        thread = threading.Thread(target=fake.serve_forever, name="fakeredis", daemon=True)
        thread.start()
        server = cls(port, "fakeredis", directory, _server=fake, _thread=thread)
        _wait_until_up(port)
        return server

    def launch(self) -> None:
        """Start (or start again, on the same port and files) the redis-server process."""
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                self.appendfsync,
                "--logfile",
                str(self.directory / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until_up(self.port)

    @property
    def pid(self) -> int | None:
        """The redis-server process id while it runs (None for fakeredis or when ended)."""
        return self._process.pid if self._process is not None else None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT)."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """End the server abruptly, as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def stop(self) -> None:
        """End the server and remove its files."""
        if self._process is not None:
            self.resume()  # a paused server would not act on SIGTERM
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)
