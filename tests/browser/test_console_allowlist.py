"""Editing a token's description and allowlist in the console, in a real browser."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.console_stack import Stack, generate, sign_in


def test_an_administrator_fences_a_token_to_networks_and_gateways_follow(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack)
    secret = generate(page, stack, "fenced-by-console")
    with stack.redis() as redis:
        token_id = redis.hget(*stack.keys.name("fenced-by-console"))
    assert token_id
    page.goto(f"{stack.url}/tokens/{token_id}")
    expect(page.get_by_text("Any address")).to_be_visible()
    page.get_by_role("link", name="Edit token").click()

    networks = page.get_by_label("Allowed client networks (optional)")
    networks.fill("203.0.113.0/24\n10.0.0.7/8")
    page.get_by_role("button", name="Save changes").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Line 2, 10.0.0.7/8: has host bits set")
    expect(page.locator("#allowed_cidrs-error")).to_contain_text("10.0.0.0/8")
    assert stack.verify(secret, client_ip="192.0.2.1")  # nothing was sent

    networks.fill("203.0.113.0/24\n2001:DB8::/32")
    page.get_by_label("Description (optional)").fill("reports from the office only")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_contain_text("Token updated")
    expect(page.get_by_text("203.0.113.0/24")).to_be_visible()
    expect(page.get_by_text("2001:db8::/32")).to_be_visible()
    assert stack.verify(secret, client_ip="203.0.113.9")
    assert stack.verify(secret, client_ip="2001:db8::1")
    assert not stack.verify(secret, client_ip="192.0.2.1")
    # The audit worker folds the event into the token's trail within a moment.
    updated = page.get_by_role("row", name=re.compile("TokenUpdated"))
    for _ in range(50):
        page.reload()
        if updated.count():
            break
        page.wait_for_timeout(100)
    expect(updated).to_contain_text("allowed_cidrs")
