"""Optional OpenTelemetry tracing of command handling; off unless ``TOKENS_OTEL_ENABLED``.

When on, FastStream's telemetry middleware opens a trace for each batch read from
``tokens:commands``; inside it the processor opens one span per Redis round trip (the
apply pipeline, the rejections, the settling transaction that publishes replies and
acknowledges) and one span per command, with its id, type, actor, token and outcome.
Log lines written meanwhile carry the trace and span ids. OpenTelemetry comes with the
``otel`` extra; without it, tracing cannot be turned on and log lines carry no ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - the otel extra is not installed
    _otel_trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

__all__ = ["Tracing", "add_trace_ids", "default_provider"]


class Tracing:
    """Spans of the command handler, or nothing at all when no provider is given."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self._tracer: Tracer | None = None
        if provider is not None:
            self._tracer = provider.get_tracer("token_service")

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded."""
        return self._tracer is not None

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[None]:
        """A child of the current span (the batch's, inside a handler)."""
        if self._tracer is None:
            yield
            return
        clean = {key: value for key, value in (attributes or {}).items() if value is not None}
        with self._tracer.start_as_current_span(name, attributes=clean):
            yield

    def record(self, name: str, start_ns: int, attributes: Mapping[str, Any]) -> None:
        """A finished span that began at ``start_ns`` (``time.time_ns``) and ends now."""
        if self._tracer is None:
            return
        clean = {key: value for key, value in attributes.items() if value is not None}
        self._tracer.start_span(name, start_time=start_ns, attributes=clean).end()

    def middlewares(self) -> list[Any]:
        """FastStream's telemetry middleware for the broker, when tracing is on."""
        if self.provider is None:
            return []
        from faststream.redis.opentelemetry import RedisTelemetryMiddleware

        return [RedisTelemetryMiddleware(tracer_provider=self.provider)]


def default_provider(service_name: str) -> TracerProvider:
    """An SDK provider exporting over OTLP/HTTP, configured by the standard ``OTEL_*`` names."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkTracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def add_trace_ids(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current trace and span ids, when a span is recording."""
    if _otel_trace is None:
        return event_dict
    context = _otel_trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict
