"""The console does all its work as its own Redis user, `publisher-console`, and Redis
refuses it nothing along the way."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.console_stack import console_stack
from token_service.redis.embedded import EmbeddedRedis


def test_the_console_works_as_its_own_redis_user(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    with console_stack(redis_server.url, tmp_path, as_console_user=True) as stack:
        with stack.redis() as admin:
            admin.execute_command("ACL", "LOG", "RESET")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            assert client.get(stack.link("alice")).status_code == 200
            page = client.get("/tokens/new").text
            found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
            assert found is not None
            made = client.post(
                "/tokens",
                data={
                    "csrf_token": found.group(1),
                    "name": "as-its-user",
                    "scope-entities": "read",
                },
            )
            assert made.status_code == 200
            assert "as-its-user" in made.text
            listing = client.get("/tokens")
            assert listing.status_code == 200
            assert "as-its-user" in listing.text
            token_link = re.search(r'href="(/tokens/[0-9A-Z]{26})"', listing.text)
            assert token_link is not None
            assert client.get(token_link.group(1)).status_code == 200
            assert client.get("/attention").status_code == 200
            assert client.get("/audit").status_code == 200
        with stack.redis() as admin:
            refused = admin.execute_command("ACL", "LOG")
        assert [entry for entry in refused if b"publisher-console" in repr(entry).encode()] == []
