"""The route table: which scope a request needs, by its method and path prefix.

The table is a TOML file (``AUTHZ_ROUTES_FILE``) of ``[[route]]`` entries::

    [[route]]
    prefix = "/api/entities"
    methods = ["GET", "HEAD"]     # optional: absent means every method
    scope = "entities:read"

A prefix matches whole path segments: ``/api/entities`` matches ``/api/entities`` and
``/api/entities/42``, never ``/api/entities-admin``. The longest matching prefix
wins; among its routes, the one that lists the method, else the one that lists none.
A path no prefix matches, or a method the winning prefix does not list, needs a scope no
token has: the request is refused (fail closed). A shorter prefix never stands in for a
longer one that refused the method, so a specific rule is never widened by a broad one.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.scopes import grants

__all__ = ["Route", "RouteTable", "RouteTableError", "load_routes"]

_ANY = "*"
_CACHE_SIZE = 4096


class RouteTableError(ValueError):
    """The route table cannot be used; the message names the entry at fault."""


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the table."""

    prefix: str
    scope: str
    methods: tuple[str, ...] = ()
    """Upper-case methods; empty means every method."""


def _well_formed_scope(scope: str) -> bool:
    # `grants` accepts exactly the scopes the contract defines, so a scope grants itself
    # if and only if it is well formed.
    return grants([scope], scope)


def _route(entry: object, where: str) -> Route:
    if not isinstance(entry, Mapping):
        raise RouteTableError(f"{where}: a route is a table with prefix, scope and methods")
    unknown = set(entry) - {"prefix", "scope", "methods"}
    if unknown:
        raise RouteTableError(f"{where}: unknown keys {sorted(unknown)}")
    prefix, scope, methods = entry.get("prefix"), entry.get("scope"), entry.get("methods", [])
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise RouteTableError(f"{where}: prefix must be a path starting with '/'")
    if not isinstance(scope, str) or not _well_formed_scope(scope):
        raise RouteTableError(f"{where}: scope must be '<resource>:<read|write|admin>'")
    if not isinstance(methods, list) or not all(
        isinstance(m, str) and m.isalpha() for m in methods
    ):
        raise RouteTableError(f"{where}: methods must be a list of method names")
    trimmed = prefix.rstrip("/") or "/"
    return Route(trimmed, scope, tuple(sorted({m.upper() for m in methods})))


class RouteTable:
    """Routes by prefix; :meth:`scope_for` answers which scope a request needs."""

    def __init__(self, routes: Iterable[Route]) -> None:
        by_prefix: dict[str, dict[str, str]] = {}
        for route in routes:
            scopes = by_prefix.setdefault(route.prefix, {})
            for method in route.methods or (_ANY,):
                if method in scopes:
                    raise RouteTableError(f"two routes for {method} {route.prefix}")
                scopes[method] = route.scope
        self._by_prefix = by_prefix
        # Few distinct paths meet a busy endpoint; the answer for one is worth keeping.
        self.scope_for = functools.lru_cache(maxsize=_CACHE_SIZE)(self._scope_for)

    def __len__(self) -> int:
        return sum(len(scopes) for scopes in self._by_prefix.values())

    def _scope_for(self, method: str, path: str) -> str | None:
        """The scope ``method path`` needs, or None: no route, so refuse."""
        candidate = path
        while True:
            scopes = self._by_prefix.get(candidate or "/")
            if scopes is not None:
                return scopes.get(method, scopes.get(_ANY))
            if not candidate or candidate == "/":
                return None
            candidate = candidate[: candidate.rfind("/")]


def load_routes(path: Path | None) -> RouteTable:
    """Read the table from ``path``; no file means no route, so every request is refused."""
    if path is None:
        return RouteTable([])
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RouteTableError(f"{path}: {exc}") from exc
    unknown = set(document) - {"route"}
    if unknown:
        raise RouteTableError(f"{path}: unknown keys {sorted(unknown)}; routes are [[route]]")
    entries = document.get("route", [])
    if not isinstance(entries, list):
        raise RouteTableError(f"{path}: routes are [[route]] tables")
    return RouteTable(_route(entry, f"{path}: route {i + 1}") for i, entry in enumerate(entries))
