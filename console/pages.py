"""Pages rendered from the Jinja2 templates in ``console/templates``, autoescaped."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from console.display import absolute, relative

__all__ = ["Pages"]


class Pages:
    """Renders a template with what every page shows: who is signed in, the CSRF token."""

    def __init__(self, product: str = "Token Service") -> None:
        self.env = Environment(
            loader=PackageLoader("console", "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["relative"] = relative
        self.env.filters["absolute"] = absolute
        self.env.globals["product"] = product

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """The page as an HTML response."""
        session = getattr(request.state, "session", None)
        context.setdefault("title", "")
        context.setdefault("errors", {})
        html = self.env.get_template(template).render(
            request=request,
            session=session,
            csrf=session.csrf if session is not None else "",
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)
