"""TLS for real: clients, the broker and the service against a TLS-only redis-server.

The tests make a throwaway CA and certificates with ``openssl`` and start a
redis-server that listens only on a TLS port.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import ADMIN
from tests.processes import service_process
from token_service.client import TokenClient
from token_service.redis.acl import dev_password, render
from token_service.redis.connection import (
    RedisAccess,
    redis_client,
    sync_redis_client,
)
from token_service.redis.embedded import free_port
from token_service.redis.subscription import redis_broker
from token_service.settings import ServiceSettings


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _signed(name: str, directory: Path, extensions: str) -> None:
    """``<name>.key`` and ``<name>.crt``, signed by the CA in ``directory``."""
    (directory / f"{name}.ext").write_text(extensions + "\n")
    _openssl(
        *("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"),
        cwd=directory,
    )
    _openssl(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext"),
        cwd=directory,
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA, a server certificate for localhost and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make their certificates with openssl, not on PATH")
    directory = tmp_path_factory.mktemp("tls")
    _openssl(
        *("req", "-x509", "-new", "-nodes", "-newkey", "ec"),
        *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", "ca.key", "-out", "ca.crt"),
        *("-days", "1", "-subj", "/CN=token-service test CA"),
        cwd=directory,
    )
    _signed("server", directory, "subjectAltName=DNS:localhost,IP:127.0.0.1")
    _signed("client", directory, "extendedKeyUsage=clientAuth")
    return directory


@dataclass
class TlsRedis:
    """A redis-server that speaks only TLS."""

    port: int
    certificates: Path

    @property
    def url(self) -> str:
        """The ``rediss://`` URL of the server."""
        return f"rediss://localhost:{self.port}/0"


_PROBE_RETRY = Retry(NoBackoff(), 0)


@contextmanager
def _tls_server(directory: Path, certificates: Path, *extra: str) -> Iterator[TlsRedis]:
    """Start redis-server with TLS only, and wait until it answers."""
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            *("--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(certificates / "server.crt")),
            *("--tls-key-file", str(certificates / "server.key")),
            *("--tls-ca-cert-file", str(certificates / "ca.crt")),
            *("--save", "", "--appendonly", "no", "--dir", str(directory)),
            *("--logfile", str(directory / "redis.log")),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = TlsRedis(port, certificates)
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                _skip_unless_tls_is_missing(directory / "redis.log")
            try:
                probe = redis.Redis(
                    host="localhost",
                    port=port,
                    ssl=True,
                    ssl_ca_certs=str(certificates / "ca.crt"),
                    ssl_certfile=str(certificates / "client.crt"),
                    ssl_keyfile=str(certificates / "client.key"),
                    socket_connect_timeout=0.5,
                    retry=_PROBE_RETRY,
                )
                with probe:
                    probe.ping()
                break
            except (redis.AuthenticationError, redis.ResponseError):
                break  # it answers, to a user it knows
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not answer over TLS"
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _skip_unless_tls_is_missing(log: Path) -> None:
    """A redis-server built without TLS is a reason to skip; any other failure is a failure."""
    said = log.read_text(errors="replace") if log.exists() else ""
    if "Bad directive" in said or "not supported" in said.lower():
        pytest.skip(f"this redis-server has no TLS support: {said.strip()[-200:]}")
    pytest.fail(f"redis-server did not start with TLS: {said.strip()[-500:]}")


@pytest.fixture
def tls_redis(certificates: Path, tmp_path: Path) -> Iterator[TlsRedis]:
    """TLS only, clients not asked for a certificate; our ACL for the ``tokens`` prefix."""
    acl = tmp_path / "users.acl"
    acl.write_text(render("tokens"))
    with _tls_server(
        tmp_path, certificates, "--tls-auth-clients", "no", "--aclfile", str(acl)
    ) as server:
        yield server


def _access(server: TlsRedis, user: str) -> RedisAccess:
    return RedisAccess(
        redis_url=server.url,
        redis_username=user,
        redis_password=SecretStr(dev_password(user)),
        redis_tls_ca_file=server.certificates / "ca.crt",
    )


async def test_rediss_url_with_our_ca_connects_over_tls(tls_redis: TlsRedis) -> None:
    client = redis_client(_access(tls_redis, "publisher"), decode_responses=True)
    try:
        assert await client.ping()
        assert await client.xadd("tokens:commands", {"data": "{}"})
    finally:
        await client.aclose()
    with sync_redis_client(_access(tls_redis, "healthcheck")) as blocking:
        assert blocking.ping()


async def test_a_server_certificate_from_an_unknown_ca_is_refused(tls_redis: TlsRedis) -> None:
    untrusting = RedisAccess(
        redis_url=tls_redis.url,
        redis_username="healthcheck",
        redis_password=SecretStr(dev_password("healthcheck")),
    )
    client = redis_client(untrusting, retry=AsyncRetry(NoBackoff(), 0))
    try:
        with pytest.raises(redis.ConnectionError, match=r"(?i)certificate"):
            await client.ping()
    finally:
        await client.aclose()


async def test_the_broker_connects_over_tls(tls_redis: TlsRedis) -> None:
    broker = redis_broker(_access(tls_redis, "healthcheck"))
    await broker.connect()
    try:
        assert await broker.ping(timeout=5)
    finally:
        await broker.stop()


async def test_the_service_handles_commands_over_tls(tls_redis: TlsRedis, tmp_path: Path) -> None:
    settings = ServiceSettings(
        redis_url=tls_redis.url,
        key_prefix="tokens",
        resources=["entities"],
        trust_shared_stream=True,
    )
    env = {
        "REDIS_USERNAME": "token-service",
        "REDIS_PASSWORD": dev_password("token-service"),
        "REDIS_TLS_CA_FILE": str(tls_redis.certificates / "ca.crt"),
    }
    log = tmp_path / "service.log"
    publisher: Redis = redis_client(_access(tls_redis, "publisher"))
    try:
        with service_process(settings, log, env=env):
            async with TokenClient(publisher, actor=ADMIN, timeout=30) as client:
                reply = await client.generate(f"tls-{uuid.uuid4().hex[:8]}", ["entities:read"])
        assert reply.ok, reply
        assert reply.secret is not None
    except BaseException:
        print(log.read_text(errors="replace"))
        raise
    finally:
        await publisher.aclose()
    assert dev_password("token-service") not in log.read_text()


def test_a_client_certificate_is_presented_when_the_server_asks(
    certificates: Path, tmp_path: Path
) -> None:
    with _tls_server(tmp_path, certificates, "--tls-auth-clients", "yes") as server:
        without = RedisAccess(redis_url=server.url, redis_tls_ca_file=certificates / "ca.crt")
        with (
            sync_redis_client(without, retry=_PROBE_RETRY) as client,
            pytest.raises(redis.ConnectionError),
        ):
            client.ping()
        with_cert = without.model_copy(
            update={
                "redis_tls_cert_file": certificates / "client.crt",
                "redis_tls_key_file": certificates / "client.key",
            }
        )
        with sync_redis_client(with_cert) as client:
            assert client.ping()
