"""tokenctl commands that change tokens or administrators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, cast

import typer
from redis.asyncio import Redis
from rich.console import Console

from contracts import TokenStatus, TokenView, utc_now
from contracts.scopes import LEVELS
from token_service.keys import Keys
from token_service.redis.store import TokenStore
from tokenctl import base, render
from tokenctl.durations import parse_date, parse_duration
from tokenctl.literal import literal
from tokenctl.settings import CliSettings
from tokenctl.updates import Allow


def _valid_scopes(settings: CliSettings) -> list[str]:
    return [f"{resource}:{level}" for resource in settings.resources for level in LEVELS]


def _expiry(expires_in: str | None, expires_at: str | None, as_json: bool) -> datetime | None:
    if expires_in and expires_at:
        base.fail("give --expires-in or --expires-at, not both", as_json)
    try:
        if expires_in:
            return utc_now() + parse_duration(expires_in)
        return parse_date(expires_at) if expires_at else None
    except ValueError as exc:
        base.fail(str(exc), as_json)


@base.app.command()
def generate(
    name: Annotated[str, typer.Option(help="One name per integration, e.g. ci-deploy.")],
    scope: Annotated[list[str], typer.Option(help="A scope such as entities:read; repeat.")],
    description: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    expires_in: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d.")] = None,
    expires_at: Annotated[str | None, typer.Option(help="Expiry date, e.g. 2027-01-31.")] = None,
    allow: Allow = None,
    actor: base.Actor = None,
    as_json: base.Json = False,
) -> None:
    """Generate a token; it is printed once and never again."""
    settings = base.settings()
    valid = _valid_scopes(settings)
    wrong = [s for s in scope if s not in valid]
    if wrong:
        base.fail(f"unknown scope {', '.join(wrong)}; valid scopes: {', '.join(valid)}", as_json)
    expiry = _expiry(expires_in, expires_at, as_json)
    reply = base.send(
        settings,
        actor,
        as_json,
        lambda c: c.generate(
            name, scope, description=description, expires_at=expiry, allowed_cidrs=allow
        ),
    )
    if as_json:
        typer.echo(reply.to_json().decode())
        return
    assert reply.token is not None
    assert reply.secret is not None
    console = Console()
    render.secret_panel(
        console, reply.secret, f"Token '{reply.token.name}' ({reply.token.id}) created"
    )


@base.app.command("list")
def list_tokens(
    show_all: Annotated[
        bool, typer.Option("--all", help="Revoked and expired tokens too.")
    ] = False,
    wide: base.Wide = False,
    as_json: base.Json = False,
) -> None:
    """List active tokens (all with --all), with who created them and when they were last used."""
    settings = base.settings()

    async def work(redis: Redis) -> tuple[list[Any], int]:
        store = TokenStore(redis, Keys(settings.key_prefix), 1000)
        status = None if show_all else TokenStatus.ACTIVE
        views, cursor, skipped = [], 0, 0
        while cursor is not None:
            page = await store.list_tokens(status, cursor, 200)
            views += page.tokens
            skipped += page.skipped
            cursor = page.next_cursor  # type: ignore[assignment]
        return views, skipped

    views, skipped = base.run(work, settings, as_json)
    if skipped:
        typer.echo(f"warning: {skipped} token record(s) could not be shown", err=True)
    if as_json:
        base.print_json([view.model_dump(mode="json") for view in views])
        return
    title = "All tokens" if show_all else "Active tokens"
    console = render.token_console(wide)
    wide = render.is_wide(console)
    console.print(render.token_table(views, f"{title} ({len(views)})", wide=wide))
    if views and not wide:
        console.print(render.narrow_hint())


def _existing(settings: CliSettings, token_id: str, as_json: bool) -> TokenView:
    view = base.run(
        lambda redis: TokenStore(redis, Keys(settings.key_prefix), 1000).get(token_id),
        settings,
        as_json,
    )
    if view is None:
        base.fail(f"no token has id {token_id}", as_json)
    return view


@base.app.command()
def show(token_id: str, as_json: base.Json = False) -> None:
    """Show one token."""
    view = _existing(base.settings(), token_id, as_json)
    if as_json:
        base.print_json(view.model_dump(mode="json"))
    else:
        Console().print(render.token_details(view))


@base.app.command()
def revoke(
    token_id: str,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to confirm.")] = False,
    actor: base.Actor = None,
    as_json: base.Json = False,
) -> None:
    """Revoke a token at once, everywhere."""
    settings = base.settings()
    if not yes:
        if as_json:  # a prompt would corrupt the JSON on stdout
            base.fail("--json needs --yes: there is no prompt in JSON mode", as_json)
        view = _existing(settings, token_id, as_json)
        question = f"Revoke token '{view.name}' ({view.id})? Gateways refuse it at once"
        if not typer.confirm(literal(question).plain):
            base.fail("not revoked", as_json)
    reply = base.send(settings, actor, as_json, lambda c: c.revoke(token_id, reason=reason))
    assert reply.token is not None
    if as_json:
        typer.echo(reply.to_json().decode())
    else:
        typer.echo(literal(f"Revoked '{reply.token.name}' ({reply.token.id}).").plain)


@base.app.command()
def rotate(
    token_id: str,
    grace: Annotated[str, typer.Option(help="How long the old secret keeps working.")] = "0s",
    actor: base.Actor = None,
    as_json: base.Json = False,
) -> None:
    """Give a token a new secret, printed once; the old one works for the grace period."""
    settings = base.settings()
    try:
        grace_seconds = int(parse_duration(grace).total_seconds())
    except ValueError as exc:
        base.fail(str(exc), as_json)
    reply = base.send(
        settings, actor, as_json, lambda c: c.rotate(token_id, grace_seconds=grace_seconds)
    )
    if as_json:
        typer.echo(reply.to_json().decode())
        return
    assert reply.token is not None
    assert reply.secret is not None
    what = f"Token '{reply.token.name}' ({reply.token.id}) rotated"
    if grace_seconds:
        what += f"; the old secret works for {grace} more"
    render.secret_panel(Console(), reply.secret, what)


@base.admins_app.command("list")
def admins_list(as_json: base.Json = False) -> None:
    """Administrators in the Redis set (TOKENS_ADMINS of the service adds to these)."""
    settings = base.settings()

    async def work(redis: Redis) -> list[str]:
        return sorted(cast(set[str], await redis.smembers(Keys(settings.key_prefix).admins)))

    names = base.run(work, settings, as_json)
    if as_json:
        base.print_json(names)
    else:
        typer.echo(
            "\n".join(literal(n).plain for n in names) if names else "no administrators in the set"
        )


def _change_admins(name: str, add: bool, as_json: bool) -> tuple[CliSettings, str, bool]:
    """Add NAME to the admins set or remove it; returns the settings, the set's key and
    whether the set changed.
    """
    settings = base.settings()
    key = Keys(settings.key_prefix).admins

    async def work(redis: Redis) -> int:
        changed = await (redis.sadd(key, name) if add else redis.srem(key, name))
        return int(changed)

    return settings, key, bool(base.run(work, settings, as_json))


@base.admins_app.command("add")
def admins_add(name: str, as_json: base.Json = False) -> None:
    """Let NAME generate, rotate and revoke tokens."""
    _, _, added = _change_admins(name, True, as_json)
    if as_json:
        base.print_json({"ok": True, "admin": name, "added": added})
    else:
        typer.echo(
            literal(f"{name} added." if added else f"{name} was already an administrator.").plain
        )


@base.admins_app.command("remove")
def admins_remove(name: str, as_json: base.Json = False) -> None:
    """Take that right away from NAME; exits 1 when TOKENS_ADMINS still grants it.

    The service takes its TOKENS_ADMINS setting as administrators besides the set, so
    removing such a name from the set changes nothing until the setting drops it too.
    tokenctl sees the TOKENS_ADMINS of its own environment, not the service's.
    """
    settings, key, removed = _change_admins(name, False, as_json)
    if name in settings.admins:
        done = f"was removed from the {key} set" if removed else f"was not in the {key} set"
        message = (
            f"{name} {done} but still acts as an administrator, because the TOKENS_ADMINS "
            f"setting lists {name}; to stop that, take {name} out of TOKENS_ADMINS where the "
            "token service runs and restart it"
        )
        if as_json:
            base.print_json({"ok": False, "admin": name, "removed": removed, "error": message})
            raise typer.Exit(1)
        base.fail(message, as_json)
    if as_json:
        base.print_json({"ok": True, "admin": name, "removed": removed})
    else:
        typer.echo(
            literal(f"{name} removed." if removed else f"{name} was not an administrator.").plain
        )
