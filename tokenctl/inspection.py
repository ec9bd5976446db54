"""tokenctl commands that look: the audit trail, stale tokens, a verify, a leak scan."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any, cast

import orjson
import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from contracts import CommandReply, utc_now
from token_service.client import TokenClient
from token_service.gateway import Accepted, Verifier
from token_service.keys import Keys
from token_service.redis.store import TokenStore
from tokenctl import base, render
from tokenctl.durations import parse_duration
from tokenctl.literal import literal
from tokenctl.scanning import Finding, scan_paths

_EXPLAIN = {
    "malformed": "not a token: wrong prefix, length, alphabet or checksum (Redis not asked)",
    "unknown": "revoked, expired or never issued",
    "expired": "the token's expiry has passed",
    "insufficient_scope": "the token does not hold that scope",
    "unavailable": "Redis could not be reached; gateways refuse while it is away",
    "ip_not_allowed": "the token has an allowlist and --client-ip is not in it (or not given)",
}


@base.app.command()
def audit(
    token: Annotated[str | None, typer.Option(help="Only this token id.")] = None,
    since: Annotated[str, typer.Option(help="How far back, e.g. 7d.")] = "7d",
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 50,
    as_json: base.Json = False,
) -> None:
    """The audit trail from tokens:events, newest first: who did what, and refusals."""
    settings = base.settings()
    try:
        start_ms = int((utc_now() - parse_duration(since)).timestamp() * 1000)
    except ValueError as exc:
        base.fail(str(exc), as_json)

    async def work(redis: Redis) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        upper = "+"
        while len(found) < limit:
            page = cast(
                list[tuple[str, dict[str, str]]],
                await redis.xrevrange(Keys(settings.key_prefix).events, upper, start_ms, 500),
            )
            for _, fields in page:
                event = orjson.loads(fields.get("data", "{}"))
                if token is None or event.get("token_id") == token:
                    found.append(event)
            if len(page) < 500:
                break
            upper = "(" + page[-1][0]
        return found[:limit]

    events = base.run(work, settings, as_json)
    if as_json:
        base.print_json(events)
        return
    table = Table(title=f"Audit trail, last {since}", title_justify="left")
    for column in ("when", "event", "actor", "token", "details"):
        table.add_column(column, overflow="fold")  # folded, never cut
    for event in events:
        table.add_row(
            literal(event.get("occurred_at", "")),
            literal(event.get("type", "")),
            literal(event.get("actor", "")),
            literal(event.get("token_id") or "-"),
            literal(_details(event)),
        )
    Console().print(table)


def _details(event: dict[str, Any]) -> str:
    kind = event.get("type")
    if kind == "CommandRejected":
        return f"{event.get('command_type')} refused: {event.get('code')}: {event.get('message')}"
    if kind == "TokenCreated":
        return f"{event.get('name')} [{' '.join(event.get('scopes', []))}]"
    if kind == "TokenRevoked":
        return f"reason: {event.get('reason') or '-'}"
    if kind == "TokenRotated":
        return f"old secret valid until {event.get('previous_valid_until')}"
    if kind == "TokenUpdated":
        changes = event.get("changes") or {}
        parts = [
            f"{name}: {_shown(change.get('old'))} -> {_shown(change.get('new'))}"
            for name, change in changes.items()
            if isinstance(change, dict)
        ]
        return "; ".join(parts) or "nothing changed"
    return ""


def _shown(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(item) for item in value) or "any address"
    return "none" if value is None else str(value)


@base.app.command()
def stale(
    unused_days: Annotated[int, typer.Option(min=1)] = 90,
    expiring_days: Annotated[int, typer.Option(min=1)] = 14,
    wide: base.Wide = False,
    as_json: base.Json = False,
) -> None:
    """Tokens to rotate or revoke: never used, unused for a while, or expiring soon."""
    settings = base.settings()
    report = base.run(
        lambda redis: TokenStore(redis, Keys(settings.key_prefix), 1000).stale(
            unused_days, expiring_days
        ),
        settings,
        as_json,
    )
    sections = {
        "never used": report.never_used,
        f"unused for {unused_days} days": report.unused,
        f"expiring within {expiring_days} days": report.expiring,
    }
    if as_json:
        base.print_json(
            {
                "never_used": [v.model_dump(mode="json") for v in report.never_used],
                "unused": [v.model_dump(mode="json") for v in report.unused],
                "expiring": [v.model_dump(mode="json") for v in report.expiring],
            }
        )
        return
    console = render.token_console(wide)
    wide = render.is_wide(console)
    for title, views in sections.items():
        if views:
            heading = f"{title.capitalize()} ({len(views)})"
            console.print(render.token_table(views, heading, wide=wide))
        else:
            console.print(f"{title.capitalize()}: none")
    if not wide and any(sections.values()):
        console.print(render.narrow_hint())


@base.app.command()
def verify(
    token: str,
    scope: Annotated[str, typer.Option(help="The scope a gateway would ask for.")],
    client_ip: Annotated[
        str | None, typer.Option(help="The client's address, for a token with an allowlist.")
    ] = None,
    as_json: base.Json = False,
) -> None:
    """What a gateway would answer for TOKEN and SCOPE, and why. Exits 1 when refused."""
    settings = base.settings()

    async def work(redis: Redis) -> Any:
        verifier = Verifier(
            redis, key_prefix=settings.key_prefix, token_prefix=settings.token_prefix
        )
        return await verifier.verify(token, scope, client_ip=client_ip)

    verdict = base.run(work, settings, as_json)
    if isinstance(verdict, Accepted):
        if as_json:
            base.print_json({"ok": True, "token_id": verdict.token_id, "scopes": verdict.scopes})
        else:
            accepted = f"accepted: token {verdict.token_id}, scopes {' '.join(verdict.scopes)}"
            typer.echo(literal(accepted).plain)
        return
    reason = verdict.reason.value
    if as_json:
        base.print_json({"ok": False, "reason": reason, "token_id": verdict.token_id})
    else:
        typer.echo(f"rejected: {reason} ({_EXPLAIN[reason]})")
    raise typer.Exit(1)


@base.app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to search.")],
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Revoke every active token found (reason: leaked).")
    ] = False,
    actor: base.Actor = None,
    as_json: base.Json = False,
) -> None:
    """Find well-formed tokens in files; exits 1 when one of them is active."""
    settings = base.settings()
    findings = scan_paths(paths, settings.token_prefix)
    known = _look_up(findings, settings, as_json)
    active = {tid for tid, _, status in known.values() if status == "active"}
    rows = []
    for finding in findings:
        token_id, name, status = known.get(finding.digest, (None, None, "unknown"))
        rows.append(
            {
                "path": str(finding.path),
                "line": finding.line,
                "hint": finding.hint,
                "token_id": token_id,
                "name": name,
                "status": status,
            }
        )
    revoked = _revoke_all(sorted(active), settings, actor, as_json) if revoke else []
    if as_json:
        base.print_json({"findings": rows, "revoked": revoked})
    else:
        for row in rows:
            who = f"{row['token_id']} '{row['name']}'" if row["token_id"] else "not found in Redis"
            line = f"{row['path']}:{row['line']}: {row['hint']}… {who} [{row['status']}]"
            typer.echo(literal(line).plain)
        typer.echo(f"{len(rows)} token(s) found, {len(active)} active.")
        for token_id in revoked:
            typer.echo(literal(f"revoked {token_id} (reason: leaked)").plain)
    if active and not revoke:
        raise typer.Exit(1)


def _look_up(
    findings: list[Finding], settings: Any, as_json: bool
) -> dict[str, tuple[str, str, str]]:
    """digest -> (token id, name, status) for the findings Redis knows; empty when it is away."""
    if not findings:
        return {}
    keys = Keys(settings.key_prefix)

    async def work(redis: Redis) -> dict[str, tuple[str, str, str]]:
        store = TokenStore(redis, keys, 1000)
        known = {}
        for digest in {f.digest for f in findings}:
            token_id = cast(str | None, await redis.hget(*keys.issued(digest)))
            view = await store.get(token_id) if token_id else None
            if view is not None:
                known[digest] = (view.id, view.name, view.status.value)
        return known

    known = base.run_if_reachable(work, settings)
    if known is None:
        typer.echo("warning: Redis unreachable; findings are shown without lookup", err=True)
        return {}
    return known


def _revoke_all(token_ids: list[str], settings: Any, actor: str | None, as_json: bool) -> list[str]:
    for token_id in token_ids:

        def call(client: TokenClient, token_id: str = token_id) -> Awaitable[CommandReply]:
            return client.revoke(token_id, reason="leaked")

        base.send(settings, actor, as_json, call)
    return token_ids
