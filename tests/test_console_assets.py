"""The console serves htmx from the pinned npm package, and its users' rights are exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from token_service.redis.acl import render

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "htmx"


def test_vendored_htmx_is_the_pinned_package() -> None:
    lock = json.loads((TOOL / "package-lock.json").read_text())
    pinned = json.loads((TOOL / "package.json").read_text())["dependencies"]["htmx.org"]
    assert lock["packages"]["node_modules/htmx.org"]["version"] == pinned
    installed = TOOL / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
    if not installed.exists():
        pytest.skip("tools/htmx is not installed (make test runs npm ci there)")
    assert (ROOT / "console/static/htmx.min.js").read_bytes() == installed.read_bytes()


def test_the_console_user_reads_what_the_pages_need_and_no_secret() -> None:
    line = next(x for x in render().splitlines() if x.startswith("user publisher-console "))
    assert "(+xread +xrevrange %R~tokens:events)" in line.replace(
        "+xrevrange +xread", "+xread +xrevrange"
    )
    assert "(+sismember %R~tokens:admins)" in line
    assert "~tokens:console:*" in line
    assert "secret" not in line
    assert "+sadd" not in line
