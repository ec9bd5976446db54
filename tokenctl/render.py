"""How tokenctl shows things to people: tables, relative times, the one-time secret.

Every value from Redis or the service goes through :func:`~tokenctl.literal.literal`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from contracts import TokenView, format_timestamp, utc_now
from tokenctl.literal import literal

__all__ = ["ago", "secret_panel", "token_details", "token_table", "when"]


def ago(moment: datetime | None, *, never: str = "never") -> str:
    """``3 minutes ago``, ``in 2 days``, or ``never``."""
    if moment is None:
        return never
    seconds = int((utc_now() - moment).total_seconds())
    if abs(seconds) < 5:
        return "just now"
    future, seconds = seconds < 0, abs(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size or unit == "second":
            count = seconds // size
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return "now"


def when(moment: datetime | None, *, never: str = "-") -> str:
    """A time as the contract writes it, or a placeholder."""
    return never if moment is None else format_timestamp(moment)


def token_table(tokens: Iterable[TokenView], title: str) -> Table:
    """The listing of tokens."""
    table = Table(title=title, title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("id", no_wrap=True)
    for column in ("hint", "scopes", "created by", "created", "expires"):
        table.add_column(column)
    table.add_column("last used")
    table.add_column("status")
    for view in tokens:
        table.add_row(
            literal(view.name),
            literal(view.id),
            literal(view.hint),
            literal(" ".join(view.scopes)),
            literal(view.created_by),
            ago(view.created_at),
            ago(view.expires_at, never="never"),
            ago(view.last_used_at),
            view.status.value,
        )
    return table


def _last_used(view: TokenView) -> str:
    if view.last_used_at is None:
        return "never"
    return f"{when(view.last_used_at)} ({ago(view.last_used_at)})"


def token_details(view: TokenView) -> Table:
    """One token, field by field."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "name": view.name,
        "id": view.id,
        "hint": view.hint,
        "status": view.status.value,
        "scopes": " ".join(view.scopes),
        "description": view.description or "-",
        "created": f"{when(view.created_at)} by {view.created_by}",
        "expires": when(view.expires_at, never="never"),
        "last used": _last_used(view),
        "rotated": when(view.rotated_at),
        "revoked": f"{when(view.revoked_at)} by {view.revoked_by}" if view.revoked_at else "-",
    }
    for key, value in rows.items():
        table.add_row(key, literal(value))
    return table


def secret_panel(console: Console, secret: str, what: str) -> None:
    """Show a new secret once, set apart, with the warning that goes with it."""
    console.print(Text.assemble("\n", literal(what), ". Copy the token now:\n"))
    console.print(Panel(literal(secret), expand=False, border_style="green"), soft_wrap=True)
    console.print(
        "[bold yellow]This is the only time it is shown.[/] It cannot be shown again: "
        "put it in a secret store now, never in code or chat.\n"
    )
