"""Sign-in through a real OpenID Connect provider (npm oidc-provider) on loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console_stack import Stack, console_stack
from token_service.redis.embedded import EmbeddedRedis


@pytest.fixture(scope="module")
def stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The processes, and the console signing in through the provider."""
    if not (Path(__file__).parents[2] / "tools/oidc/node_modules/oidc-provider").exists():
        pytest.fail("run `make test` (or npm ci in tools/oidc) to install oidc-provider")
    with console_stack(redis_server.url, tmp_path_factory.mktemp("oidc"), oidc=True) as started:
        yield started


def _sign_in_at_provider(page: Page, stack: Stack, login: str) -> None:
    page.goto(f"{stack.url}/sign-in")
    page.get_by_role("link", name="Sign in with your organisation's account").click()
    assert stack.oidc_issuer is not None
    page.wait_for_url(re.compile(re.escape(stack.oidc_issuer) + "/interaction/"))
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").click()
    consent = page.locator("button[type=submit]", has_text=re.compile("Continue|Authorize"))
    if consent.count():
        consent.first.click()


def test_an_administrator_signs_in_through_the_provider(page: Page, stack: Stack) -> None:
    _sign_in_at_provider(page, stack, "alice")
    page.wait_for_url(f"{stack.url}/tokens")
    expect(page.get_by_text("Signed in as alice")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"


def test_a_holder_of_the_administrators_group_is_an_administrator(page: Page, stack: Stack) -> None:
    _sign_in_at_provider(page, stack, "grace")
    page.wait_for_url(f"{stack.url}/tokens")
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()


def test_someone_else_signed_in_by_the_provider_is_not_an_administrator(
    page: Page, stack: Stack
) -> None:
    _sign_in_at_provider(page, stack, "mallory")
    expect(page.get_by_role("heading", name="You are not an administrator")).to_be_visible()
