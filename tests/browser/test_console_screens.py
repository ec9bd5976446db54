"""Audit (live), needs attention, the usage chart, and screenshots of every page.

Screenshots at 375 px and 1440 px go to ``docs/screenshots/`` with
``UPDATE_SCREENSHOTS=1`` (how the committed ones were made), else to a temporary folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from redis.asyncio import Redis

from contracts import TokenUsed, utc_now
from tests.console_stack import ROOT, Stack, console_stack, run_async, sign_in
from token_service.client import TokenClient
from token_service.redis.embedded import EmbeddedRedis

SAMPLES = [
    (
        "billing-export",
        ["entities:read", "reports:write"],
        "Nightly export to the billing system",
        90,
    ),
    ("ci-deploy", ["entities:write"], "GitHub Actions deploy job (team platform)", 30),
    ("partner-acme", ["entities:read"], "ACME's integration: contact ops@acme.example", 7),
    ("legacy-sync", ["entities:admin", "reports:admin"], None, None),
]


async def _seed(stack: Stack) -> dict[str, str]:
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    ids: dict[str, str] = {}
    try:
        async with TokenClient(
            redis, actor="alice", key_prefix=stack.keys.prefix, publisher="console"
        ) as client:
            for name, scopes, description, days in SAMPLES:
                expires = utc_now() + timedelta(days=days) if days else None
                reply = await client.generate(
                    name, scopes, description=description, expires_at=expires
                )
                assert reply.token is not None
                ids[name] = reply.token.id
            assert (await client.revoke(ids["legacy-sync"], reason="replaced by ci-deploy")).ok
        now = utc_now()
        for day in range(60):
            used = TokenUsed(
                actor="edge-1",
                token_id=ids["billing-export"],
                gateway="edge-1",
                used_at=now - timedelta(days=day),
                count=(day * 37) % 90 + 5,
            )
            await redis.xadd(stack.keys.usage, {"data": used.to_json()})
    finally:
        await redis.aclose()
    return ids


@pytest.fixture(scope="module")
def stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The processes, with a few tokens of each kind and two months of uses."""
    with console_stack(redis_server.url, tmp_path_factory.mktemp("screens")) as started:
        started.ids = run_async(lambda: _seed(started))  # type: ignore[attr-defined]
        yield started


def _shoot(page: Page, name: str, tmp_path: Path) -> None:
    folder = ROOT / "docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    for width in (1440, 375):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})


def test_the_audit_page_shows_changes_and_refusals_live(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    page.goto(f"{stack.url}/audit")
    expect(page.get_by_role("row", name=re.compile("TokenRevoked alice"))).to_be_visible()

    async def act() -> None:
        redis = Redis.from_url(stack.redis_url, decode_responses=True)
        prefix = stack.keys.prefix
        async with TokenClient(redis, actor="alice", key_prefix=prefix, publisher="console") as c:
            assert (await c.generate("live-one", ["reports:read"])).ok
        async with TokenClient(redis, actor="eve", key_prefix=prefix, publisher="console") as c:
            assert not (await c.generate("sneaky", ["reports:read"])).ok
        await redis.aclose()

    run_async(act)
    expect(page.get_by_role("row", name=re.compile("TokenCreated alice"))).to_have_count(5)
    expect(page.get_by_role("row", name=re.compile("CommandRejected eve"))).to_be_visible()
    page.goto(f"{stack.url}/audit?type=CommandRejected")
    expect(page.locator("tbody tr")).to_have_count(1)


def test_needs_attention_lists_never_used_tokens_with_actions(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    page.get_by_role("link", name="Needs attention").click()
    never = page.get_by_role("region", name=re.compile("Never used"))
    expect(never.get_by_role("link", name="ci-deploy", exact=True)).to_be_visible()
    expect(never.get_by_role("link", name="Revoke ci-deploy")).to_be_visible()
    expiring = page.get_by_role("region", name=re.compile("Expiring within 14 days"))
    expect(expiring.get_by_role("link", name="partner-acme", exact=True)).to_be_visible()
    expiring.get_by_role("link", name="Rotate partner-acme").click()
    expect(page.get_by_role("button", name="Rotate token")).to_be_visible()


def test_the_token_page_charts_daily_uses(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    page.get_by_role("link", name="billing-export", exact=True).click()
    chart = page.get_by_role("img", name="Daily uses, last 30 days")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar")).to_have_count(30)
    page.get_by_role("link", name="90 days").click()
    expect(page.get_by_role("img", name="Daily uses, last 90 days")).to_be_visible()


def test_screenshots_of_every_page(page: Page, stack: Stack, tmp_path: Path) -> None:
    page.goto(f"{stack.url}/sign-in")
    _shoot(page, "sign-in", tmp_path)
    sign_in(page, stack)
    _shoot(page, "tokens", tmp_path)
    page.goto(f"{stack.url}/tokens/new")
    page.get_by_label("Name", exact=True).fill("bad name!")
    page.get_by_label("On a date and time (UTC)").check()
    page.get_by_label("Date and time (UTC)", exact=True).fill("2020-01-01T09:00")
    page.get_by_role("button", name="Generate token").click()
    expect(page.get_by_role("alert")).to_be_focused()
    _shoot(page, "new-token-errors", tmp_path)
    page.get_by_label("Name", exact=True).fill("reports-reader")
    page.get_by_label("In 90 days").check()
    page.get_by_label("reports").select_option("read")
    page.get_by_role("button", name="Generate token").click()
    _shoot(page, "shown-once", tmp_path)
    page.goto(f"{stack.url}/tokens/{stack.ids['billing-export']}")  # type: ignore[attr-defined]
    _shoot(page, "token", tmp_path)
    page.get_by_role("link", name="Revoke token").click()
    _shoot(page, "revoke", tmp_path)
    for path, name in (("/audit", "audit"), ("/attention", "needs-attention")):
        page.goto(stack.url + path)
        _shoot(page, name, tmp_path)
    page.context.clear_cookies()
    page.goto(stack.link("mallory"))
    _shoot(page, "not-an-administrator", tmp_path)
