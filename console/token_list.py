"""Administration > API tokens: the list (search, paging) and generating a new token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console.forms import NewTokenForm, field_of
from console.guard import admin_only, console_of
from console.sessions import Session
from contracts import CommandReply, ErrorCode, TokenStatus, TokenView
from token_service.redis.reads import TokenPage

__all__ = ["PAGE_SIZE", "routes"]

PAGE_SIZE = 50


def _cursor(text: str | None) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0


@admin_only
async def token_list(request: Request, _session: Session) -> Response:
    """Tokens, newest first; active only unless asked; a page at a time."""
    console = console_of(request)
    query = request.query_params.get("q", "").strip()[:64]
    everything = request.query_params.get("all") == "1"
    cursor = _cursor(request.query_params.get("cursor"))
    needle = query.casefold()

    def matches(view: TokenView) -> bool:
        return needle in view.name.casefold()

    status = None if everything else TokenStatus.ACTIVE
    where = matches if needle else None
    page = await console.reader.list_tokens(
        status, cursor, PAGE_SIZE, newest_first=True, where=where
    )
    if page.next_cursor is not None:  # a full page: is there anything after it?
        after = await console.reader.list_tokens(
            status, page.next_cursor, 1, newest_first=True, where=where
        )
        page = page if after.tokens else TokenPage(page.tokens, None)
    start = _cursor(request.query_params.get("shown"))
    template = "tokens/list.html"
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        template = "tokens/_results.html"  # htmx swaps the results alone
    return console.pages.render(
        request,
        template,
        title="API tokens",
        tokens=page.tokens,
        next_cursor=page.next_cursor,
        query=query,
        everything=everything,
        first=cursor == 0,
        start=start,
    )


def _form_page(request: Request, form: NewTokenForm, status: int = 200) -> Response:
    console = console_of(request)
    return console.pages.render(
        request,
        "tokens/new.html",
        status,
        title="Error: New API token" if form.errors else "New API token",
        form=form,
        errors=form.errors,
        resources=console.settings.resources,
    )


@admin_only
async def new_token(request: Request, _session: Session) -> Response:
    """The form."""
    return _form_page(request, NewTokenForm())


def _refused(form: NewTokenForm, reply: CommandReply) -> None:
    error = reply.error
    if error is None:
        form.errors["form"] = "The token service gave no answer we understand. Try again."
    elif error.code is ErrorCode.CONFLICT and "name" not in error.message:
        form.command_id = NewTokenForm().command_id  # another body under the same id
        form.errors["form"] = "This form was already sent with other values. Check and send again"
    elif error.code is ErrorCode.CONFLICT:
        form.errors["name"] = (
            "An active token already has this name (names are unique whatever their case). "
            "Choose another name, or revoke that token first"
        )
    elif error.fields:
        for name, message in error.fields.items():
            form.errors.setdefault(field_of(name), message[:1].upper() + message[1:])
    else:
        form.errors["form"] = f"The token service refused: {error.message}"


@admin_only
async def create_token(request: Request, session: Session) -> Response:
    """Generate: the secret is in this response only, never stored anywhere."""
    console = console_of(request)
    form = NewTokenForm.parse(await request.form(), console.settings.resources)
    if not form.check():
        return _form_page(request, form, 422)
    client = await console.senders.client_for(session.identity)
    reply = await client.generate(
        form.name,
        form.scopes,
        description=form.description or None,
        expires_at=form.expires_at(),
        command_id=form.command_id,
    )
    if reply.ok and reply.secret is not None and reply.token is not None:
        return console.pages.render(
            request,
            "tokens/secret.html",
            title="Copy your new token",
            token=reply.token,
            secret=reply.secret,
            rotated=False,
        )
    if reply.ok and reply.token is not None:
        return console.pages.render(
            request, "tokens/already.html", title="Token already generated", token=reply.token
        )
    if reply.error is not None and reply.error.code is ErrorCode.FORBIDDEN:
        return console.pages.render(request, "refused.html", 403, title="Refused", reply=reply)
    _refused(form, reply)
    return _form_page(request, form, 422)


routes = [
    Route("/tokens", token_list, methods=["GET"]),
    Route("/tokens", create_token, methods=["POST"]),
    Route("/tokens/new", new_token),
]
