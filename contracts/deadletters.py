"""What ``tokens:dead-letter`` holds: an entry that could not be handled, parked with why."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts._time import Timestamp, utc_now

__all__ = ["DeadLetter"]


class DeadLetter(BaseModel):
    """One parked entry: where it came from, why, and a masked copy of its fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)

    type: Literal["DeadLetter"] = "DeadLetter"
    stream: str
    entry_id: str
    reason: str
    fields: dict[str, str] = Field(
        description="The entry's fields, cut to 64 KiB each, with anything token-shaped masked"
    )
    occurred_at: Timestamp = Field(default_factory=utc_now)
    consumer: str

    def to_json(self) -> bytes:
        """The wire form, a UTF-8 JSON object."""
        return self.model_dump_json().encode()
