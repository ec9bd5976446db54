"""Errors a person can act on: Redis down, the service not answering; and the headers."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.console_stack import console_stack
from token_service.redis.embedded import EmbeddedRedis, free_port


def _signed_in(client: httpx.Client, link: str) -> str:
    assert client.get(link).status_code == 200
    page = client.get("/tokens/new").text
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_service_that_does_not_answer_gets_a_page_saying_what_to_do(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    with (
        console_stack(
            redis_server.url, tmp_path, service=False, env={"CONSOLE_REPLY_TIMEOUT_SECONDS": "1"}
        ) as stack,
        httpx.Client(base_url=stack.url) as client,
    ):
        csrf = _signed_in(client, stack.link("alice"))
        answer = client.post(
            "/tokens",
            data={"csrf_token": csrf, "name": "nobody-home", "scope-entities": "read"},
        )
    assert answer.status_code == 504
    assert "The token service did not answer" in answer.text
    assert "/readyz" in answer.text


def test_redis_down_gets_a_page_saying_what_to_do(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    with (
        console_stack(redis_server.url, tmp_path, service=False, env={"REDIS_URL": down}) as stack,
        httpx.Client(base_url=stack.url) as client,
    ):
        answer = client.get("/sign-in/link?code=whatever")
        headers = client.get("/sign-in").headers
    assert answer.status_code == 503
    assert "Redis is unavailable" in answer.text
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
