"""How tokenctl shows things to people: tables, relative times, the one-time secret.

Every value from Redis or the service goes through :func:`~tokenctl.literal.literal`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from contracts import TokenView, format_timestamp, utc_now
from tokenctl.literal import literal

__all__ = [
    "WIDE_COLUMNS",
    "ago",
    "is_wide",
    "narrow_hint",
    "secret_panel",
    "token_console",
    "token_details",
    "token_table",
    "when",
]

WIDE_COLUMNS = 160
"""From this terminal width on, token tables show every column."""


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


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    value: Callable[[TokenView], str]
    narrow: bool
    """Shown at any width; the others only in wide tables."""
    no_wrap: bool = False


# The narrow columns answer "what is it, may it be used, is it used, until when".
_COLUMNS = (
    _Column("name", lambda v: v.name, narrow=True),
    _Column("id", lambda v: v.id, narrow=False, no_wrap=True),
    _Column("status", lambda v: v.status.value, narrow=True, no_wrap=True),
    _Column("scopes", lambda v: " ".join(v.scopes), narrow=True),
    _Column("last used", lambda v: ago(v.last_used_at), narrow=True, no_wrap=True),
    _Column("expires", lambda v: ago(v.expires_at, never="never"), narrow=True, no_wrap=True),
    _Column("created by", lambda v: v.created_by, narrow=False),
    _Column("created", lambda v: ago(v.created_at), narrow=False, no_wrap=True),
    _Column("hint", lambda v: v.hint, narrow=False, no_wrap=True),
    _Column("allowed from", lambda v: " ".join(v.allowed_cidrs) or "any", narrow=False),
)


def token_console(wide: bool) -> Console:
    """Standard output for token tables; ``wide`` (--wide) makes it WIDE_COLUMNS wide at least.

    On a narrower terminal, wide lines then run past its edge (``less -S`` shows them),
    rather than nine columns squeezed into slivers.
    """
    console = Console()
    return Console(width=WIDE_COLUMNS) if wide and console.width < WIDE_COLUMNS else console


def is_wide(console: Console) -> bool:
    """Whether the console has room for every column of a token table."""
    return console.width >= WIDE_COLUMNS


def narrow_hint() -> Text:
    """The line under a narrow token table that says what it left out."""
    hidden = ", ".join(column.header for column in _COLUMNS if not column.narrow)
    return Text(f"Hidden at this width: {hidden}. Add --wide to see them.", style="dim")


def token_table(tokens: Iterable[TokenView], title: str, *, wide: bool) -> Table:
    """The listing of tokens; a narrow one has only the columns that matter first."""
    columns = [column for column in _COLUMNS if wide or column.narrow]
    table = Table(title=title, title_justify="left")
    for column in columns:
        # Folded, never cut: a cell too long for its column goes on over more lines.
        table.add_column(column.header, no_wrap=column.no_wrap, overflow="fold")
    for view in tokens:
        table.add_row(*(literal(column.value(view)) for column in columns))
    return table


def _last_used(view: TokenView) -> str:
    if view.last_used_at is None:
        return "never"
    return f"{when(view.last_used_at)} ({ago(view.last_used_at)})"


def token_details(view: TokenView) -> Table:
    """One token, field by field."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = {
        "name": view.name,
        "id": view.id,
        "hint": view.hint,
        "status": view.status.value,
        "scopes": " ".join(view.scopes),
        "description": view.description or "-",
        "allowed from": " ".join(view.allowed_cidrs) or "any address",
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
