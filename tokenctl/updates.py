"""tokenctl update: a token's description and allowlist, without a new secret."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from tokenctl import base, render

Allow = Annotated[
    list[str] | None,
    typer.Option(
        "--allow",
        help="A client network the token may be used from (CIDR, IPv4 or IPv6); repeat.",
    ),
]


@base.app.command()
def update(
    token_id: str,
    description: Annotated[
        str | None, typer.Option(help="The new description ('' removes it).")
    ] = None,
    allow: Allow = None,
    allow_any: Annotated[
        bool, typer.Option("--allow-any", help="Remove the allowlist: any address.")
    ] = False,
    actor: base.Actor = None,
    as_json: base.Json = False,
) -> None:
    """Change a token's description or allowlist; its secret stays the same."""
    if allow and allow_any:
        base.fail("give --allow or --allow-any, not both", as_json)
    allowed = [] if allow_any else allow
    if description is None and allowed is None:
        base.fail("nothing to change: give --description, --allow or --allow-any", as_json)
    settings = base.settings()
    reply = base.send(
        settings,
        actor,
        as_json,
        lambda c: c.update(token_id, description=description, allowed_cidrs=allowed),
    )
    if as_json:
        typer.echo(reply.to_json().decode())
        return
    assert reply.token is not None
    Console().print(render.token_details(reply.token))
