"""Which request a check is about: the original method and path, as the proxy tells them.

Each proxy says it its own way:

- nginx ``auth_request``: headers the configuration sets, ``X-Original-URI`` and
  ``X-Original-Method``;
- Traefik ForwardAuth: ``X-Forwarded-Uri`` and ``X-Forwarded-Method``;
- Envoy's HTTP ``ext_authz``: the check request itself, with the original method and the
  original path appended to the configured path prefix (``/check`` + ``/api/...``).

Every source present must agree, or the check is refused: a client can add headers of
its own (Traefik copies every request header to the check unless told otherwise), and
two sources that disagree mean one of them was forged. The path is normalized as an
upstream would read it (RFC 3986: unreserved characters decoded, dot segments removed;
runs of slashes merged), so ``/public/../admin`` needs the scope of ``/admin``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Original", "normalize_path", "original_request"]

_URI_HEADERS = ("x-original-uri", "x-forwarded-uri")
_METHOD_HEADERS = ("x-original-method", "x-forwarded-method")
_UNRESERVED_ESCAPE = re.compile(r"%(2[dDeE]|3\d|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\;]|%(?![0-9A-Fa-f]{2})|%5[cC]|%2[fF]|%00")
_METHOD = re.compile(r"^[A-Z]{1,20}$")


@dataclass(frozen=True, slots=True)
class Original:
    """The request the proxy asks about."""

    method: str
    path: str
    """Normalized: starts with ``/``, no query, no dot segments, no empty segments."""


def _decode_unreserved(match: re.Match[str]) -> str:
    return chr(int(match.group(1), 16))


def normalize_path(target: str) -> str | None:
    """The path of ``target`` as routes match it, or None when it cannot be trusted.

    Refused: anything but an origin-form target (``/path?query``), whitespace or control
    characters, broken percent escapes and an encoded NUL, and what servers disagree on:
    backslashes, encoded slashes or backslashes (a separator or not) and semicolons
    (Java servers cut ``;params`` off a segment, so ``/public/..;/admin`` is ``/admin``
    to them).
    """
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") or _FORBIDDEN.search(path):
        return None
    path = _UNRESERVED_ESCAPE.sub(_decode_unreserved, path)
    segments: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in (".", ""):
            segments.append(segment)
    ends_in_slash = path.endswith(("/", "/.", "/.."))
    return "/" + "/".join(segments) + ("/" if ends_in_slash and segments else "")


def _agreed(values: list[str]) -> str | None:
    return values[0] if values and all(value == values[0] for value in values) else None


def original_request(
    method: str, target: str, headers: Mapping[str, str], path_prefix: str
) -> Original | None:
    """The original request, or None when its sources are missing or disagree.

    ``method`` and ``target`` are the check request's own; ``path_prefix`` is where the
    endpoint is mounted (Envoy appends the original path to it).
    """
    uris = [headers[name] for name in _URI_HEADERS if name in headers]
    methods = [headers[name].upper() for name in _METHOD_HEADERS if name in headers]
    if not target.startswith(path_prefix):
        return None
    rest = target[len(path_prefix) :]
    if rest and rest[0] not in "/?":
        return None  # /checkpoint is not under /check
    if rest.startswith("/"):  # Envoy: the original path is in the check's own path
        uris.append(rest)
        methods.append(method)
    elif not uris:
        return None
    uri, original_method = _agreed(uris), _agreed(methods)
    if uri is None or original_method is None or not _METHOD.match(original_method):
        return None
    path = normalize_path(uri)
    return None if path is None else Original(original_method, path)
