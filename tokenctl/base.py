"""What every tokenctl command shares: the app, settings, error handling, sending."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson
import typer
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console

from contracts import CommandReply
from token_service.client import ReplyTimeout, TokenClient
from token_service.redis.connection import redis_client
from tokenctl.literal import literal
from tokenctl.settings import CliSettings

__all__ = [
    "Actor",
    "Json",
    "Wide",
    "admins_app",
    "app",
    "fail",
    "print_json",
    "run",
    "send",
    "settings",
]

T = TypeVar("T")
app = typer.Typer(help="Manage the platform's API tokens.", no_args_is_help=True)
admins_app = typer.Typer(help="Who may generate, rotate and revoke tokens.", no_args_is_help=True)
app.add_typer(admins_app, name="admins")

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Actor = Annotated[
    str | None,
    typer.Option("--actor", help="Acting administrator (default: TOKENS_ACTOR or login)."),
]
Wide = Annotated[bool, typer.Option("--wide", help="Every column, however narrow the terminal.")]


class Failure(Exception):
    """Something the user should hear about in one line."""


def settings() -> CliSettings:
    """Settings from the environment, read per command."""
    return CliSettings()


def fail(message: str, as_json: bool) -> NoReturn:
    """Say what went wrong in one line (or as JSON) and exit 1.

    The message may quote what Redis or the service said, so it is shown literally.
    """
    if as_json:
        typer.echo(orjson.dumps({"ok": False, "error": message}).decode())
    else:
        typer.echo(f"error: {literal(message).plain}", err=True)
    raise typer.Exit(1)


def _redacted(url: str) -> str:
    """The URL without its user and password, fit to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _with_redis(work: Callable[[Redis], Awaitable[T]], settings: CliSettings) -> T:
    async def wrapped() -> T:
        redis = redis_client(settings, decode_responses=True, socket_timeout=10)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(wrapped())


def run(work: Callable[[Redis], Awaitable[T]], settings: CliSettings, as_json: bool) -> T:
    """Run ``work`` with a Redis client, turning outages and timeouts into one-line failures."""
    try:
        return _with_redis(work, settings)
    except ReplyTimeout as exc:
        fail(
            f"the token service did not answer within {settings.timeout_s:g}s: is it running? "
            "Start it with `make run`.",
            as_json,
        )
        raise AssertionError from exc  # unreachable; keeps type checkers calm
    except (RedisError, OSError) as exc:
        fail(f"cannot reach Redis at {_redacted(settings.redis_url)}: {exc}", as_json)
    except ValidationError as exc:  # the command breaks the contract: said before sending
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        fail(f"invalid: {problems}", as_json)
    except Failure as exc:
        fail(str(exc), as_json)


def run_if_reachable(work: Callable[[Redis], Awaitable[T]], settings: CliSettings) -> T | None:
    """Like :func:`run`, but ``None`` when Redis cannot be reached."""
    try:
        return _with_redis(work, settings)
    except (RedisError, OSError):
        return None


@contextmanager
def waiting(as_json: bool) -> Iterator[None]:
    """A spinner on stderr while the service works (none for --json)."""
    if as_json:
        yield
        return
    with Console(stderr=True).status("Waiting for the token service..."):
        yield


def print_json(value: Any) -> None:
    """Indented JSON on stdout."""
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def send(
    settings: CliSettings,
    actor: str | None,
    as_json: bool,
    call: Callable[[TokenClient], Awaitable[CommandReply]],
) -> CommandReply:
    """Send a command and wait; a rejection exits 1 with its code and message."""

    async def work(redis: Redis) -> CommandReply:
        async with TokenClient(
            redis,
            actor=actor or settings.actor,
            key_prefix=settings.key_prefix,
            timeout=settings.timeout_s,
            publisher=settings.publisher,
        ) as client:
            with waiting(as_json):
                return await call(client)

    reply = run(work, settings, as_json)
    if not reply.ok and reply.error is not None:
        details = "; ".join(f"{k}: {v}" for k, v in (reply.error.fields or {}).items())
        message = f"{reply.error.code.value}: {reply.error.message}"
        if as_json:
            typer.echo(reply.to_json().decode())
            raise typer.Exit(1)
        fail(f"{message} ({details})" if details else message, as_json)
    return reply
