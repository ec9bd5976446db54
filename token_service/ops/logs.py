"""Structured JSON logs, with every token-shaped string masked before it is written."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from contracts.token_format import mask_tokens_in
from token_service.ops.tracing import add_trace_ids

__all__ = ["configure_logging", "mask_tokens"]


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_tokens_in(value)
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(item) for item in value]
    return value


def mask_tokens(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace anything shaped like a token with ``<prefix>_***``."""
    for key, value in event_dict.items():
        event_dict[key] = _mask(value)
    return event_dict


def _render(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=str).decode()


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    add_trace_ids,
    mask_tokens,
]


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """JSON lines on ``stream`` (stdout), for our loggers and for the standard library's."""
    out = stream or sys.stdout
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_SHARED, _render],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_SHARED],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _render],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # FastStream gives its loggers handlers of their own; route them through the masking too.
    for name in ("faststream", "faststream.access"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
