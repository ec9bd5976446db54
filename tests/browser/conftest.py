"""Fixtures of the browser tests: one Chromium per session, one stack of processes per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.console_stack import CHROMIUM, CHROMIUM_ARGS, Stack, console_stack
from token_service.redis.embedded import EmbeddedRedis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a ``browser`` test (``pytest -m browser`` runs them)."""
    for item in items:
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (shipped in its PyPI package); no browser download.

    Per module, not per session: the sync API holds an event loop in this thread while it
    runs, and the async tests after the browser tests need the thread without one.
    """
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, the token service, the audit worker and the console, as real processes."""
    with console_stack(redis_server.url, tmp_path_factory.mktemp("console")) as started:
        yield started


@pytest.fixture
def context(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies), allowed to use the clipboard on the console."""
    fresh = browser.new_context(viewport={"width": 1440, "height": 900})
    fresh.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    fresh.set_default_timeout(15_000)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A tab of the fresh profile."""
    return context.new_page()
