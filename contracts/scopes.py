"""Scopes are ``<resource>:<level>``; a higher level grants the lower ones."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import StringConstraints

__all__ = ["LEVELS", "Scope", "grants", "resource_of"]

LEVELS = ("read", "write", "admin")
"""Levels from least to most: ``R:write`` grants ``R:read``, ``R:admin`` grants both."""

_SCOPE = re.compile(r"^([a-z][a-z0-9_.-]{0,63}):(read|write|admin)$")

Scope = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,63}:(read|write|admin)$"),
]
"""One scope string, such as ``entities:read``."""


def resource_of(scope: str) -> str:
    """The resource a well-formed scope names."""
    return scope.partition(":")[0]


def grants(held: Iterable[str], wanted: str) -> bool:
    """Whether any held scope grants ``wanted`` under the level order."""
    match = _SCOPE.match(wanted)
    if match is None:
        return False
    resource, level = match.groups()
    needed = LEVELS.index(level)
    for scope in held:
        have_resource, _, have_level = scope.partition(":")
        if (
            have_resource == resource
            and have_level in LEVELS
            and LEVELS.index(have_level) >= needed
        ):
            return True
    return False
