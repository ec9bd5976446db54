"""compose.yaml: valid for Compose, and wired the way the README says.

Docker itself is not needed: the file is checked by ``docker compose config`` (or the
older ``docker-compose``) when either is installed, always by reading it, and its health
checks are run against real processes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.processes import (
    audit_worker_process,
    authz_process,
    notifier_process,
    service_process,
)
from token_service.redis.acl import render
from token_service.redis.embedded import EmbeddedRedis, free_port
from token_service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("token-service", "audit-worker")
FRONT_SERVICES = ("authz", "app", "nginx")
HA_SERVICES = ("redis-replica-1", "redis-replica-2", "sentinel-1", "sentinel-2", "sentinel-3")
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _resolved(value: object) -> str:
    """A value as Compose would see it with none of the variables set."""
    return _DEFAULTED.sub(lambda match: match.group(2), str(value))


def _environment(service: str) -> dict[str, str]:
    raw = _compose()["services"][service].get("environment", {})
    return {name: _resolved(value) for name, value in raw.items()}


def _acl_line(user: str) -> str:
    text = (ROOT / "deploy/redis/users.acl").read_text()
    return next(line for line in text.splitlines() if line.startswith(f"user {user} "))


def _sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def test_compose_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (see .ci/run)")
    checked = subprocess.run(
        [*command, "-f", str(ROOT / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stderr


def test_every_service_has_a_healthcheck_and_restarts_unless_stopped() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "redis",
        *APP_SERVICES,
        *FRONT_SERVICES,
        "console",
        "notifier",
        *HA_SERVICES,
    }
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert service.get("healthcheck", {}).get("test"), name


def test_redis_loads_our_acl_file_read_only_and_fsyncs_every_write() -> None:
    redis = _compose()["services"]["redis"]
    assert redis["image"] == "redis:7"
    command = [str(part) for part in redis["command"]]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--aclfile"] == "/etc/redis/users.acl"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "always"  # README, "Durability", says why
    assert "./deploy/redis/users.acl:/etc/redis/users.acl:ro" in redis["volumes"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_redis_healthcheck_logs_in_as_healthcheck_without_a_password_in_argv() -> None:
    redis = _compose()["services"]["redis"]
    test = redis["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert "--user healthcheck" in test[1]
    assert "ping" in test[1]
    assert "--pass" not in test[1]
    assert "-a " not in test[1]
    password = _environment("redis")["REDISCLI_AUTH"]
    assert f"#{_sha256(password)}" in _acl_line("healthcheck")


def test_each_app_service_logs_in_as_its_own_user_with_a_password_the_acl_knows() -> None:
    usernames = set()
    for service in APP_SERVICES:
        environment = _environment(service)
        user = environment["REDIS_USERNAME"]
        assert user == service
        usernames.add(user)
        assert f"#{_sha256(environment['REDIS_PASSWORD'])}" in _acl_line(user)
        assert environment["REDIS_URL"].startswith("redis://redis:")
    assert len(usernames) == len(APP_SERVICES)


def test_the_notifier_logs_in_as_notifier_and_waits_without_webhooks() -> None:
    environment = _environment("notifier")
    assert environment["REDIS_USERNAME"] == "notifier"
    assert f"#{_sha256(environment['REDIS_PASSWORD'])}" in _acl_line("notifier")
    assert environment["NOTIFY_WEBHOOKS"] == "[]"
    assert _compose()["services"]["notifier"]["command"] == ["python", "-m", "workers.notify"]


def test_the_service_trusts_no_shared_stream_and_each_publisher_has_a_user() -> None:
    env = _environment("token-service")
    assert env["TOKENS_TRUST_SHARED_STREAM"] == "false"
    for publisher in env["TOKENS_PUBLISHERS"].split(","):
        name = publisher.partition(":")[0]
        assert _acl_line(f"publisher-{name}")


def test_app_services_wait_for_a_healthy_redis_and_listen_beyond_loopback() -> None:
    services = _compose()["services"]
    for service, http in zip(APP_SERVICES, ("TOKENS_HTTP", "AUDIT_HTTP"), strict=True):
        assert services[service]["depends_on"]["redis"]["condition"] == "service_healthy"
        environment = _environment(service)
        assert environment[f"{http}_HOST"] == "0.0.0.0"  # noqa: S104 (containers are reached from outside)
        probe = " ".join(services[service]["healthcheck"]["test"])
        assert f"127.0.0.1:{environment[f'{http}_PORT']}/readyz" in probe


def test_the_compose_file_uses_the_dockerfile_that_ships_python() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:" in dockerfile
    for service in APP_SERVICES:
        assert _compose()["services"][service]["build"] == "."


def test_the_auth_endpoint_logs_in_as_gateway_and_reads_the_shipped_routes() -> None:
    authz = _compose()["services"]["authz"]
    environment = _environment("authz")
    assert environment["REDIS_USERNAME"] == "gateway"  # read secret hashes, report use: no more
    assert f"#{_sha256(environment['REDIS_PASSWORD'])}" in _acl_line("gateway")
    assert environment["REDIS_URL"].startswith("redis://redis:")
    assert authz["build"] == "."
    assert authz["command"] == ["python", "-m", "authz"]
    assert authz["depends_on"]["redis"]["condition"] == "service_healthy"
    assert environment["AUTHZ_HOST"] == environment["AUTHZ_HTTP_HOST"] == "0.0.0.0"  # noqa: S104
    mount = f"./deploy/authz/routes.toml:{environment['AUTHZ_ROUTES_FILE']}:ro"
    assert mount in authz["volumes"]
    probe = " ".join(authz["healthcheck"]["test"])
    assert f"127.0.0.1:{environment['AUTHZ_HTTP_PORT']}/readyz" in probe


def test_nginx_runs_the_tested_config_in_front_of_an_upstream_reached_only_through_it() -> None:
    services = _compose()["services"]
    front = services["nginx"]
    assert "./deploy/nginx/authz.conf:/etc/nginx/conf.d/default.conf:ro" in front["volumes"]
    assert front["ports"] == ["8000:8080"]  # the console publishes 8080
    for needed in ("authz", "app"):
        assert front["depends_on"][needed]["condition"] == "service_healthy"
    assert "ports" not in services["app"]
    conf = (ROOT / "deploy/nginx/authz.conf").read_text()
    assert f"server authz:{_environment('authz')['AUTHZ_PORT']};" in conf
    assert "server app:8080;" in conf
    assert "listen 8080;" in conf
    assert "listen 8080;" in (ROOT / "deploy/nginx/sample-app.conf").read_text()
    assert "/nginx-health" in " ".join(front["healthcheck"]["test"])


def _healthy(command: list[str], limit_s: float = 30.0) -> None:
    """Run a health check until it passes, as Compose would; fail the test if it never does."""
    deadline = time.monotonic() + limit_s
    while True:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"health check never passed: {command}: {result.stdout}{result.stderr}")
        time.sleep(0.2)


def test_the_health_checks_pass_against_real_processes_with_the_compose_settings(
    tmp_path: Path,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    acl = tmp_path / "users.acl"
    acl.write_text(render(prefix))
    server = EmbeddedRedis.start(extra_args=("--aclfile", str(acl)))
    services = _compose()["services"]
    try:
        redis_check = services["redis"]["healthcheck"]["test"][1]
        # Never the machine's own Redis on 6379: the check is pointed at ours.
        redis_check = redis_check.replace("redis-cli", f"redis-cli -p {server.port}", 1)
        _healthy_shell(redis_check, {"REDISCLI_AUTH": _environment("redis")["REDISCLI_AUTH"]})
        settings = ServiceSettings(
            redis_url=server.url, key_prefix=prefix, trust_shared_stream=True
        )
        log = tmp_path / "processes.log"
        ports = {service: free_port() for service in APP_SERVICES}
        envs = {
            service: {
                **_environment(service),
                "REDIS_URL": server.url,
                # compose listens on every interface of its container; here, loopback only
                "TOKENS_HTTP_HOST": "127.0.0.1",
                "AUDIT_HTTP_HOST": "127.0.0.1",
                "TOKENS_HTTP_PORT": str(ports[service]),
                "AUDIT_HTTP_PORT": str(ports[service]),
            }
            for service in APP_SERVICES
        }
        authz_port = free_port()
        authz_env = {
            **_environment("authz"),
            "REDIS_URL": server.url,
            "AUTHZ_HOST": "127.0.0.1",
            "AUTHZ_HTTP_HOST": "127.0.0.1",
            "AUTHZ_PORT": "0",
            "AUTHZ_HTTP_PORT": str(authz_port),
            "AUTHZ_ROUTES_FILE": str(ROOT / "deploy/authz/routes.toml"),
        }
        notifier_port = free_port()
        notifier_env = {
            **_environment("notifier"),
            "REDIS_URL": server.url,
            "NOTIFY_HTTP_HOST": "127.0.0.1",
            "NOTIFY_HTTP_PORT": str(notifier_port),
        }
        with (
            service_process(settings, log, env=envs["token-service"]),
            audit_worker_process(settings, log, env=envs["audit-worker"]),
            authz_process(settings, log, env=authz_env),
            notifier_process(settings, log, env=notifier_env),
        ):
            _healthy(_compose_probe("authz", "AUTHZ_HTTP_PORT", authz_port))
            _healthy(_compose_probe("notifier", "NOTIFY_HTTP_PORT", notifier_port))
            for service in APP_SERVICES:
                compose_port = _environment(service)[
                    "TOKENS_HTTP_PORT" if service == "token-service" else "AUDIT_HTTP_PORT"
                ]
                program, *args = services[service]["healthcheck"]["test"][1:]
                assert program == "python"
                check = [
                    sys.executable,
                    *(arg.replace(f":{compose_port}/", f":{ports[service]}/") for arg in args),
                ]
                _healthy(check)
    finally:
        server.stop()


def _compose_probe(service: str, port_variable: str, port: int) -> list[str]:
    """A service's compose health check, pointed at ``port`` instead of its compose one."""
    compose_port = _environment(service)[port_variable]
    program, *args = _compose()["services"][service]["healthcheck"]["test"][1:]
    assert program == "python"
    return [sys.executable, *(arg.replace(f":{compose_port}/", f":{port}/") for arg in args)]


def _healthy_shell(command: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["sh", "-c", command], env={"PATH": os.environ.get("PATH", ""), **env}, check=False
    )
    assert result.returncode == 0, command


def test_the_console_logs_in_as_its_publisher_user_and_the_service_registers_it() -> None:
    environment = _environment("console")
    assert environment["REDIS_USERNAME"] == "publisher-console"
    assert f"#{_sha256(environment['REDIS_PASSWORD'])}" in _acl_line("publisher-console")
    assert "console:delegating" in _environment("token-service")["TOKENS_PUBLISHERS"]
    assert _compose()["services"]["console"]["depends_on"]["redis"]["condition"] == (
        "service_healthy"
    )


def test_the_ha_profile_has_two_replicas_and_three_sentinels_logged_in_as_their_users() -> None:
    compose = _compose()
    services = compose["services"]
    acl = (ROOT / "deploy" / "redis" / "users.acl").read_text()
    for name in HA_SERVICES:
        assert services[name]["profiles"] == ["ha"], name
    for name in ("redis-replica-1", "redis-replica-2"):
        command = services[name]["command"]
        assert command[command.index("--replicaof") + 1] == "redis"
        assert command[command.index("--masteruser") + 1] == "replica"
        assert "/etc/redis/users.acl" in command
    # After a failover the old primary is a replica too: it must log in the same way.
    assert services["redis"]["command"][services["redis"]["command"].index("--masteruser") + 1] == (
        "replica"
    )
    sentinel_script = services["sentinel-1"]["command"][0]
    assert "sentinel monitor mymaster redis 6379 2" in sentinel_script
    assert "sentinel auth-user mymaster sentinel" in sentinel_script
    for user in ("replica", "sentinel"):
        assert f"user {user} on #" in acl, user
    for name in ("token-service", "audit-worker", "console", "authz"):
        assert services[name]["environment"]["REDIS_SENTINELS"] == "${REDIS_SENTINELS:-}", name
