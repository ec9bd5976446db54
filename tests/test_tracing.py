"""Tracing (optional): a command's handling, its Redis round trips and its reply share a trace."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from tests.conftest import ADMIN
from token_service.app import Service, build_service
from token_service.client import TokenClient
from token_service.settings import ServiceSettings


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Every finished span, kept in memory."""
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    settings: ServiceSettings, exporter: InMemorySpanExporter
) -> AsyncIterator[Service]:
    """The command handler with tracing on, exporting to ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    built = build_service(settings, tracer_provider=provider)
    await built.app.start()
    yield built
    await built.app.stop()
    await built.store.redis.aclose()


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def test_command_handling_redis_transaction_and_reply_form_one_trace(
    traced: Service,
    redis: Redis,
    settings: ServiceSettings,
    exporter: InMemorySpanExporter,
    captured_logs: io.StringIO,
) -> None:
    async with TokenClient(redis, actor=ADMIN, key_prefix=settings.key_prefix) as client:
        reply = await client.generate("traced", ["entities:read"], command_id="trace-1")
    assert reply.ok
    assert reply.token is not None
    await traced.app.stop()  # every span of the batch has ended by now

    spans = list(exporter.get_finished_spans())
    command = _one(spans, "command GenerateToken")
    assert command.attributes is not None
    assert command.attributes["command_id"] == "trace-1"
    assert command.attributes["token_id"] == reply.token.id
    assert command.attributes["actor"] == ADMIN
    assert command.attributes["outcome"] == "ok"
    assert command.attributes["reply_channels"] == 1
    trace_id = command.context.trace_id
    process = next(
        s for s in spans if s.name.endswith("process") and s.context.trace_id == trace_id
    )
    for name in ("redis apply", "redis record rejections", "redis settle and reply"):
        child = _one(spans, name)
        assert child.context.trace_id == trace_id
        assert child.parent is not None
        assert child.parent.span_id == process.context.span_id
    assert command.parent is not None
    assert command.parent.span_id == process.context.span_id

    lines = [orjson.loads(line) for line in captured_logs.getvalue().splitlines()]
    handled = [line for line in lines if line.get("command_id") == "trace-1"]
    assert handled, "no log line of the command's handling"
    assert {line["trace_id"] for line in handled} == {format(trace_id, "032x")}
    assert reply.secret is not None
    assert reply.secret not in captured_logs.getvalue()
