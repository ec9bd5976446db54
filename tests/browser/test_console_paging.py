"""The list pages through 10,000 tokens with the read API's cursor, and searches them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from redis.asyncio import Redis

from tests.console_stack import Stack, console_stack, run_async, sign_in
from token_service.client import TokenClient
from token_service.redis.embedded import EmbeddedRedis

COUNT = 10_000


async def _generate_many(stack: Stack, count: int) -> None:
    # Through the service, as the console would: 500 commands in flight at a time.
    redis = Redis.from_url(stack.redis_url, decode_responses=True, max_connections=600)
    try:
        async with TokenClient(
            redis, actor="alice", key_prefix=stack.keys.prefix, publisher="console", timeout=60
        ) as client:
            for start in range(0, count, 500):
                replies = await asyncio.gather(
                    *(
                        client.generate(f"bulk-{n:05d}", ["entities:read"])
                        for n in range(start, min(start + 500, count))
                    )
                )
                assert all(reply.ok for reply in replies)
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The processes, with 10,000 active tokens."""
    with console_stack(redis_server.url, tmp_path_factory.mktemp("paging")) as started:
        began = time.monotonic()
        run_async(lambda: _generate_many(started, COUNT))
        print(f"\nFIGURES console-paging: generated={COUNT} in {time.monotonic() - began:.1f}s")
        yield started


def test_the_list_pages_through_10000_tokens_newest_first(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    began = time.monotonic()
    seen: list[str] = []
    pages = 0
    while True:
        names = page.locator("table.tokens a.name").all_inner_texts()
        seen += names
        pages += 1
        following = page.get_by_role("link", name="Next page")
        if not following.count():
            break
        page.goto(stack.url + (following.get_attribute("href") or ""), wait_until="commit")
        page.wait_for_selector("nav.pager", state="attached")
    print(f"\nFIGURES console-paging: pages={pages} in {time.monotonic() - began:.1f}s")
    assert pages == COUNT // 50
    assert len(seen) == COUNT
    assert len(set(seen)) == COUNT
    assert set(seen) == {f"bulk-{n:05d}" for n in range(COUNT)}
    # newest first: tokens made in the same millisecond may come in any order among them
    assert seen[0] > "bulk-09000"
    assert seen[-1] < "bulk-01000"
    expect(page.get_by_role("status")).to_contain_text(f"Showing {COUNT - 49} to {COUNT}")


def test_next_page_with_htmx_swaps_the_results_and_keeps_a_url(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_role("status")).to_contain_text("Showing 51 to 100")
    expect(page).to_have_url(re.compile(r"cursor=50"))
    expect(page.get_by_role("link", name="First page")).to_be_visible()


def test_search_by_name_finds_one_among_10000(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    page.get_by_label("Search by name").fill("bulk-00042")
    expect(page.get_by_role("status")).to_contain_text("Showing 1 to 1 matching")
    expect(page.locator("table.tokens a.name")).to_have_text(["bulk-00042"])
    expect(page).to_have_url(re.compile(r"q=bulk-00042"))
