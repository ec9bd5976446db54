"""The new-token form: what a person typed, checked as the wire contract says.

Errors are keyed by the form's field ids, so each message sits at its field and the
error summary links to it. The service checks everything again; its own refusals
(a reply's ``fields``) are mapped onto the same ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter, ValidationError

from contracts import LEVELS, utc_now
from contracts.commands import TokenName

__all__ = ["EXPIRY_CHOICES", "NewTokenForm", "field_of"]

EXPIRY_CHOICES = ("30", "90", "365", "date", "never")
_NAME = TypeAdapter(TokenName)
_NAME_RULE = (
    "Enter a name of 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
)


@dataclass
class NewTokenForm:
    """The form's values as typed, and what is wrong with them."""

    name: str = ""
    description: str = ""
    levels: dict[str, str] = field(default_factory=dict)
    """resource -> ``none``, ``read``, ``write`` or ``admin``."""
    expiry: str = "90"
    expiry_date: str = ""
    command_id: str = field(default_factory=lambda: f"console-{uuid.uuid4().hex}")
    started: str = field(default_factory=lambda: utc_now().isoformat())
    """When the form was first shown: a preset expiry counts from then, so that the same
    form sent twice is the same command (answered as a duplicate, not a conflict)."""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, form: Mapping[str, object], resources: list[str]) -> NewTokenForm:
        """Read the posted fields (anything missing reads as empty)."""

        def text(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        levels = {resource: text(f"scope-{resource}") or "none" for resource in resources}
        command_id = text("command_id")
        parsed = cls(
            name=text("name"),
            description=text("description"),
            levels=levels,
            expiry=text("expiry") or "90",
            expiry_date=text("expiry_date"),
        )
        if command_id.startswith("console-") and len(command_id) <= 64 and command_id.isascii():
            parsed.command_id = command_id
            parsed.started = text("started") or parsed.started
        return parsed

    def _start(self, now: datetime) -> datetime:
        try:
            started = datetime.fromisoformat(self.started)
        except ValueError:
            return now
        fresh = started.tzinfo is not None and timedelta(0) <= now - started <= timedelta(days=1)
        return started if fresh else now

    @property
    def scopes(self) -> list[str]:
        """The scopes chosen, one per resource given any access."""
        return [f"{resource}:{level}" for resource, level in self.levels.items() if level in LEVELS]

    def expires_at(self, now: datetime | None = None) -> datetime | None:
        """When the token would expire; None for never (or a date that does not parse)."""
        now = now or utc_now()
        if self.expiry in ("30", "90", "365"):
            return self._start(now) + timedelta(days=int(self.expiry))
        if self.expiry == "date":
            try:
                moment = datetime.fromisoformat(self.expiry_date)
            except ValueError:
                return None
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        return None

    def check(self, now: datetime | None = None) -> bool:
        """Fill ``errors``; True when the form can be sent."""
        self.errors = {}
        try:
            _NAME.validate_python(self.name)
        except ValidationError:
            self.errors["name"] = "Enter a name" if not self.name else _NAME_RULE
        if len(self.description) > 1024:
            self.errors["description"] = "Description must be 1024 characters or fewer"
        if any(level not in ("none", *LEVELS) for level in self.levels.values()):
            self.errors["scopes"] = "Choose none, read, write or admin for each resource"
        elif not self.scopes:
            self.errors["scopes"] = "Choose at least one scope: give read access to one resource"
        self._check_expiry(now or utc_now())
        return not self.errors

    def _check_expiry(self, now: datetime) -> None:
        if self.expiry not in EXPIRY_CHOICES:
            self.errors["expiry"] = "Choose when the token expires"
        elif self.expiry == "date":
            moment = self.expires_at(now)
            if not self.expiry_date:
                self.errors["expiry_date"] = "Enter the date and time the token expires"
            elif moment is None:
                self.errors["expiry_date"] = "Enter a real date and time, like 2027-01-31 09:00"
            elif moment <= now:
                self.errors["expiry_date"] = "The expiry must be in the future"


def field_of(contract_field: str) -> str:
    """The form field a reply's field error belongs at."""
    head = contract_field.split(".")[0].split("[")[0]
    return {"expires_at": "expiry_date", "scopes": "scopes", "description": "description"}.get(
        head, "name" if head == "name" else "form"
    )
