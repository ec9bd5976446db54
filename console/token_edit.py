"""Edit one token's description and allowlist (UpdateToken); its secret stays the same.

The allowlist is typed one network per line. It is checked here as the contract checks
it, so that each error sits at its field; the service checks it all again, and its own
refusals are shown the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from console.guard import admin_only, console_of
from console.sessions import Session
from contracts import CommandReply, ErrorCode, TokenView
from contracts.networks import MAX_CIDRS, AllowedCidrs

__all__ = ["routes"]

_ALLOWLIST = TypeAdapter(AllowedCidrs)


def _text(form: Mapping[str, object], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def allowlist_errors(lines: list[str]) -> str | None:
    """What is wrong with the networks typed, in words, or ``None``."""
    if len(lines) > MAX_CIDRS:
        return f"Enter at most {MAX_CIDRS} networks"
    try:
        _ALLOWLIST.validate_python(lines)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = error["loc"][0] if error["loc"] else None
        if isinstance(where, int):
            return f"Line {where + 1}, {lines[where]}: {error['msg']}"
        return f"Enter each network once: {error['msg']}"
    return None


def _render(
    request: Request, token: TokenView, values: dict[str, str], errors: dict[str, str]
) -> Response:
    return console_of(request).pages.render(
        request,
        "tokens/edit.html",
        400 if errors else 200,
        title=f"Edit {token.name}",
        token=token,
        values=values,
        errors=errors,
    )


def _reply_errors(reply: CommandReply) -> dict[str, str]:
    error = reply.error
    if error is None:
        return {"form": "The service did not answer; try again"}
    fields = error.fields or {}
    found = {
        ("allowed_cidrs" if name.startswith("allowed_cidrs") else "description"): message
        for name, message in fields.items()
        if name.startswith(("allowed_cidrs", "description"))
    }
    return found or {"form": error.message}


@admin_only
async def edit_page(request: Request, _session: Session) -> Response:
    """The form, filled with the token's description and allowlist."""
    token = await console_of(request).reader.get(request.path_params["token_id"][:64])
    if token is None:
        return console_of(request).pages.render(request, "not_found.html", 404, title="Not found")
    values = {"description": token.description or "", "allowed": "\n".join(token.allowed_cidrs)}
    return _render(request, token, values, {})


@admin_only
async def edit(request: Request, session: Session) -> Response:
    """Send UpdateToken with both fields as typed; back to the token page when done."""
    console = console_of(request)
    token = await console.reader.get(request.path_params["token_id"][:64])
    if token is None:
        return console.pages.render(request, "not_found.html", 404, title="Not found")
    form = await request.form()
    values = {"description": _text(form, "description"), "allowed": _text(form, "allowed")}
    lines = [line.strip() for line in values["allowed"].splitlines() if line.strip()]
    errors: dict[str, str] = {}
    if len(values["description"]) > 1024:
        errors["description"] = "Description must be 1024 characters or fewer"
    if (problem := allowlist_errors(lines)) is not None:
        errors["allowed_cidrs"] = problem
    if errors:
        return _render(request, token, values, errors)
    client = await console.senders.client_for(session.identity)
    reply = await client.update(
        token.id, description=values["description"], allowed_cidrs=_ALLOWLIST.validate_python(lines)
    )
    if not reply.ok:
        if reply.error is not None and reply.error.code is ErrorCode.FORBIDDEN:
            return console.pages.render(request, "refused.html", 403, title="Refused", reply=reply)
        return _render(request, token, values, _reply_errors(reply))
    return RedirectResponse(f"/tokens/{token.id}?done=updated", status_code=303)


routes = [
    Route("/tokens/{token_id}/edit", edit_page, methods=["GET"]),
    Route("/tokens/{token_id}/edit", edit, methods=["POST"]),
]
