"""The token record as stored in its Redis hash, and the ``TokenView`` built from it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from ulid import ULID

from contracts import TokenStatus, TokenView, format_timestamp, from_millis, to_millis

__all__ = ["new_record", "view_from_record"]


def new_record(
    *,
    token_id: str,
    name: str,
    description: str | None,
    scopes: list[str],
    created_at: datetime,
    created_by: str,
    expires_at: datetime | None,
    hint: str,
    allowed_cidrs: list[str] | None = None,
) -> dict[str, str]:
    """The hash fields of a freshly generated token; optional fields are left out.

    The id is not stored (the key holds it), nor is the creation time when the id is its
    ULID, to the millisecond, as the handlers make it.
    """
    record = {
        "name": name,
        "scopes": " ".join(scopes),
        "status": TokenStatus.ACTIVE.value,
        "created_by": created_by,
        "hint": hint,
    }
    if ULID.from_str(token_id).milliseconds != to_millis(created_at):
        record["created_at"] = format_timestamp(created_at)
    if description is not None:
        record["description"] = description
    if expires_at is not None:
        record["expires_at"] = format_timestamp(expires_at)
        record["expires_ms"] = str(to_millis(expires_at))
    if allowed_cidrs:
        # Space-separated, as the secret hash carries it for gateways.
        record["allowed_cidrs"] = " ".join(allowed_cidrs)
    return record


def _last_used(record: Mapping[str, str]) -> str | None:
    """The last use, or ``None`` when there is none or what is stored cannot be one.

    Written by the audit worker from what gateways report: should a bad value ever be
    stored, the token shows no last use rather than becoming unreadable everywhere.
    """
    millis = record.get("last_used_ms")
    if millis is None or not millis.isascii() or not millis.isdigit():
        return None
    try:
        return format_timestamp(from_millis(int(millis)))
    except (OverflowError, ValueError):  # past the year 9999
        return None


def _created_at(token_id: str, record: Mapping[str, str]) -> str:
    # Records of layout 1 hold it; since, only when the id's ULID time is not it.
    stored = record.get("created_at")
    return stored or format_timestamp(from_millis(ULID.from_str(token_id).milliseconds))


def view_from_record(
    record: Mapping[str, str], now_ms: int | None = None, *, token_id: str | None = None
) -> TokenView:
    """The contract's view of a stored record (``token_id``: the id its key names, when the
    record does not hold it); an active token past its expiry shows as expired."""
    token_id = token_id or record["id"]
    status = TokenStatus(record["status"])
    expires_ms = record.get("expires_ms")
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if status is TokenStatus.ACTIVE and expires_ms is not None and int(expires_ms) <= now:
        status = TokenStatus.EXPIRED
    return TokenView.model_validate(
        {
            "id": token_id,
            "name": record["name"],
            "description": record.get("description"),
            "scopes": record["scopes"].split(),
            "status": status,
            "created_at": _created_at(token_id, record),
            "created_by": record["created_by"],
            "expires_at": record.get("expires_at"),
            "revoked_at": record.get("revoked_at"),
            "revoked_by": record.get("revoked_by"),
            "rotated_at": record.get("rotated_at"),
            "last_used_at": _last_used(record),
            "hint": record["hint"],
            "allowed_cidrs": record.get("allowed_cidrs", "").split(),
        },
        strict=False,
    )
