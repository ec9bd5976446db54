"""One primary, two replicas and three sentinels, real processes on free loopback ports.

Only the ``redis-server`` binary is needed: a sentinel is ``redis-server <conf>
--sentinel``. Sentinels decide a failover after ``down_after_ms`` of silence from the
primary, with a quorum of two.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from token_service.redis.embedded import EmbeddedRedis, free_port

__all__ = ["MASTER", "HaCluster"]

MASTER = "mymaster"
# A replica's first sync starts at once, not after the default 5 s wait for others to join.
_DATA = ("--repl-diskless-sync-delay", "0")


def _sentinel_conf(port: int, directory: Path, primary: int, down_after_ms: int) -> str:
    return "\n".join(
        [
            f"port {port}",
            "bind 127.0.0.1",
            f'dir "{directory}"',
            f'logfile "{directory / "sentinel.log"}"',
            f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2",
            f"sentinel down-after-milliseconds {MASTER} {down_after_ms}",
            f"sentinel failover-timeout {MASTER} 10000",
            f"sentinel parallel-syncs {MASTER} 2",
            "",
        ]
    )


@dataclass
class HaCluster:
    """The processes, and where to reach them; :meth:`stop` ends them all."""

    down_after_ms: int = 1000
    servers: list[EmbeddedRedis] = field(default_factory=list)
    """The data servers; ``servers[0]`` was the primary at the start."""
    sentinel_ports: list[int] = field(default_factory=list)
    _sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ha-")))

    @classmethod
    def start(cls, down_after_ms: int = 1000) -> HaCluster:
        """Start everything and wait until the sentinels see both replicas and each other."""
        cluster = cls(down_after_ms)
        try:
            primary = EmbeddedRedis.start(extra_args=_DATA)
            cluster.servers.append(primary)
            for _ in range(2):
                replica = EmbeddedRedis.start(
                    extra_args=(*_DATA, "--replicaof", "127.0.0.1", str(primary.port))
                )
                cluster.servers.append(replica)
            for _ in range(3):
                cluster._start_sentinel(primary.port)
            cluster.wait_until_settled(primary.port, replicas=2, deadline_s=30)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_sentinel(self, primary: int) -> None:
        port = free_port()
        directory = self._directory / f"sentinel-{port}"
        directory.mkdir()
        conf = directory / "sentinel.conf"
        conf.write_text(_sentinel_conf(port, directory, primary, self.down_after_ms))
        self._sentinels.append(
            subprocess.Popen(
                ["redis-server", str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        self.sentinel_ports.append(port)

    @property
    def sentinels(self) -> str:
        """``REDIS_SENTINELS``."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers sees it."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=0.5) as sentinel:
                    host_port = sentinel.sentinel_get_master_addr_by_name(MASTER)
                    return int(host_port[1]) if host_port else None
            except redis.RedisError:
                continue
        return None

    def wait_until_settled(self, primary: int, *, replicas: int, deadline_s: float) -> None:
        """Until every sentinel names ``primary`` with ``replicas`` replicas up and 2 peers."""
        until = time.monotonic() + deadline_s
        while not all(self._sees(port, primary, replicas) for port in self.sentinel_ports):
            if time.monotonic() > until:
                raise TimeoutError("the sentinels did not agree on the cluster in time")
            time.sleep(0.1)

    @staticmethod
    def _sees(port: int, primary: int, replicas: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=0.5, decode_responses=True) as sentinel:
                state = sentinel.sentinel_master(MASTER)
                if int(state["port"]) != primary or state.get("is_sdown"):
                    return False
                up = [
                    r
                    for r in sentinel.sentinel_slaves(MASTER)
                    if not r["is_sdown"] and r.get("master-link-status") == "ok"
                ]
                peers = int(state["num-other-sentinels"])
                return len(up) >= replicas and peers >= 2
        except redis.RedisError:
            return False

    def server_on(self, port: int) -> EmbeddedRedis:
        """The data server listening on ``port``."""
        return next(server for server in self.servers if server.port == port)

    def stop(self) -> None:
        """End every process and remove their files."""
        for process in self._sentinels:
            process.terminate()
        for process in self._sentinels:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for server in self.servers:
            server.stop()
        shutil.rmtree(self._directory, ignore_errors=True)
