"""The web console end to end: Redis, the token service, the audit worker and the console
as real processes, an OpenID Connect provider (npm ``oidc-provider``) when asked, and
Debian's Chromium driven by Playwright. Shared by the ``browser`` tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import redis as sync_redis
from playwright.sync_api import Page
from redis.asyncio import Redis

from console.sessions import digest
from tests.conftest import ADMIN
from tests.processes import service_process
from token_service.gateway import Accepted, Verifier
from token_service.keys import Keys
from token_service.redis.acl import dev_password, password_hash, users
from token_service.redis.embedded import free_port
from token_service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OIDC_TOOL = ROOT / "tools" / "oidc"
RESOURCES = ("entities", "reports")
T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end in a thread of its own (Playwright's sync API owns ours)."""

    async def wrapped() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrapped()).result(120)


def _wait_http(url: str, deadline_s: float = 20.0) -> None:
    until = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except OSError:
            if time.monotonic() > until:
                raise
            time.sleep(0.05)


@dataclass
class Stack:
    """The processes of one end-to-end run, and ways to look behind the pages."""

    url: str
    redis_url: str
    keys: Keys
    logs: list[Path] = field(default_factory=list)
    oidc_issuer: str | None = None

    def redis(self) -> sync_redis.Redis:
        """A blocking client on the stack's Redis (str replies)."""
        return sync_redis.Redis.from_url(self.redis_url, decode_responses=True)

    def link(self, identity: str) -> str:
        """A fresh one-time sign-in link, as ``python -m console link`` makes one."""
        code = uuid.uuid4().hex + uuid.uuid4().hex
        with self.redis() as client:
            client.set(self.keys.console_link(digest(code)), identity, ex=300)
        return f"{self.url}/sign-in/link?code={code}"

    def verify(
        self, secret: str, scope: str = "entities:read", client_ip: str | None = None
    ) -> bool:
        """What a gateway's ``Verifier`` answers for ``secret`` (from ``client_ip``)."""

        async def check() -> bool:
            redis = Redis.from_url(self.redis_url)
            try:
                verifier = Verifier(redis, key_prefix=self.keys.prefix)
                verdict = await verifier.verify(secret, scope, client_ip=client_ip)
            finally:
                await redis.aclose()
            return isinstance(verdict, Accepted)

        return run_async(check)

    def log_text(self) -> str:
        """Everything every process of the stack logged."""
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())


@contextmanager
def _oidc_provider(port: int, redirect_uri: str, log: Path) -> Iterator[str]:
    args = ["node", str(OIDC_TOOL / "provider.mjs"), str(port), "console", "console-secret"]
    with log.open("ab") as out:
        process = subprocess.Popen([*args, redirect_uri, "grace"], stdout=out, stderr=out)
    try:
        issuer = f"http://127.0.0.1:{port}"
        _wait_http(f"{issuer}/.well-known/openid-configuration")
        yield issuer
    finally:
        process.kill()
        process.wait(10)


@contextmanager
def _console(stack: Stack, port: int, env: Mapping[str, str], log: Path) -> Iterator[None]:
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CONSOLE_"))},
        "REDIS_URL": stack.redis_url,
        "TOKENS_KEY_PREFIX": stack.keys.prefix,
        "TOKENS_RESOURCES": ",".join(RESOURCES),
        "CONSOLE_PORT": str(port),
        "CONSOLE_SIGN_IN_LINKS": "true",
        **env,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "console"], env=variables, stdout=out, stderr=out
        )
    try:
        _wait_http(f"{stack.url}/livez")
        yield
    finally:
        process.terminate()
        process.wait(10)


def _acl_arguments(line: str) -> list[str]:
    """An ACL file line's rules as ACL SETUSER takes them: one argument per selector."""
    arguments: list[str] = []
    for word in line.split(" ")[2:]:  # past "user <name>"
        if arguments and arguments[-1].startswith("(") and not arguments[-1].endswith(")"):
            arguments[-1] += f" {word}"
        else:
            arguments.append(word)
    return arguments


def _console_user(client: sync_redis.Redis, prefix: str) -> dict[str, str]:
    user = next(u for u in users(prefix) if u.name == "publisher-console")
    line = user.line(password_hash(dev_password(user.name)))
    client.execute_command("ACL", "SETUSER", user.name, *_acl_arguments(line))  # type: ignore[no-untyped-call]
    return {"REDIS_USERNAME": user.name, "REDIS_PASSWORD": dev_password(user.name)}


@contextmanager
def console_stack(
    redis_url: str,
    directory: Path,
    *,
    oidc: bool = False,
    service: bool = True,
    env: Mapping[str, str] | None = None,
    as_console_user: bool = False,
) -> Iterator[Stack]:
    """Start the processes; ``env`` adds or overrides the console's environment.

    ``as_console_user``: the console logs in as ``publisher-console``, created on the
    server with exactly the rights ``python -m token_service.acl`` renders for it.
    """
    prefix = f"c{uuid.uuid4().hex[:10]}"
    port = free_port()
    stack = Stack(f"http://127.0.0.1:{port}", redis_url, Keys(prefix))
    with ExitStack() as started, stack.redis() as client:
        client.sadd(stack.keys.admins, ADMIN)
        settings = ServiceSettings(
            redis_url=redis_url, key_prefix=prefix, resources=list(RESOURCES), http_port=None
        )
        if service:
            log = directory / f"service-{prefix}.log"
            stack.logs.append(log)
            extra = {
                "TOKENS_PUBLISHERS": "console:delegating",
                "TOKENS_ADMINS": "",
                "AUDIT_POLL_MS": "20",
            }
            started.enter_context(service_process(settings, log, "--with-audit-worker", env=extra))
        console_env = dict(env or {})
        if as_console_user:
            console_env |= _console_user(client, prefix)
        if oidc:
            log = directory / f"oidc-{prefix}.log"
            stack.logs.append(log)
            issuer = started.enter_context(
                _oidc_provider(free_port(), f"{stack.url}/sign-in/callback", log)
            )
            stack.oidc_issuer = issuer
            console_env |= {
                "CONSOLE_OIDC_ISSUER": issuer,
                "CONSOLE_OIDC_CLIENT_ID": "console",
                "CONSOLE_OIDC_CLIENT_SECRET": "console-secret",
                "CONSOLE_OIDC_ADMIN_GROUP": "token-admins",
            }
        log = directory / f"console-{prefix}.log"
        stack.logs.append(log)
        started.enter_context(_console(stack, port, console_env, log))
        yield stack


def sign_in(page: Page, stack: Stack, identity: str = ADMIN) -> None:
    """Sign in through a one-time link, as ``make run`` prints one."""
    page.goto(stack.link(identity))
    page.wait_for_url(f"{stack.url}/tokens")


def generate(page: Page, stack: Stack, name: str, *, grace_scope: str = "read") -> str:
    """Fill the new-token form (entities at ``grace_scope``) and return the secret shown."""
    page.goto(f"{stack.url}/tokens/new")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("entities").select_option(grace_scope)
    page.get_by_role("button", name="Generate token").click()
    field = page.get_by_label("Token", exact=True)
    return field.input_value()
