"""An administrator signs in, generates, copies, rotates and revokes tokens in Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from contracts.token_format import secret_digest
from tests.console_stack import Stack, generate, sign_in


def test_a_sign_in_link_works_once(page: Page, stack: Stack) -> None:
    link = stack.link("alice")
    page.goto(link)
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.get_by_text("Signed in as alice")).to_be_visible()
    page.context.clear_cookies()
    page.goto(link)
    expect(page.get_by_role("alert")).to_contain_text("already used or has expired")
    page.goto(f"{stack.url}/tokens")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/tokens$"))


def test_generated_token_is_copied_from_the_page_accepted_then_revoked(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack)
    shown = generate(page, stack, "billing-export")
    expect(page.get_by_text("it cannot be shown again")).to_be_visible()
    page.get_by_role("button", name="Copy token").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown
    assert stack.verify(copied), "a gateway refuses the token the page showed"

    page.get_by_role("link", name="I have copied it: go to the token").click()
    page.get_by_role("link", name="Revoke token").click()
    page.get_by_label("Reason (optional)").fill("vendor offboarded")
    page.get_by_role("button", name="Yes, revoke token").click()
    expect(page.get_by_role("status")).to_contain_text("Token revoked")
    expect(page.get_by_role("heading", name=re.compile("billing-export"))).to_contain_text(
        "Revoked"
    )
    assert not stack.verify(copied), "the revoked token still works"


def test_rotation_with_grace_keeps_both_secrets_until_the_grace_ends(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack)
    old = generate(page, stack, "rotating")
    page.get_by_role("link", name="I have copied it: go to the token").click()
    token_url = page.url
    page.get_by_label("Old secret keeps working for").select_option("3600")
    page.get_by_role("button", name="Rotate token").click()
    new = page.get_by_label("New secret").input_value()
    expect(page.get_by_text("1 hour")).to_be_visible()
    assert new != old
    assert stack.verify(old)
    assert stack.verify(new)

    # The hour passes: Redis drops the old secret's key at its expiry, as it would then.
    with stack.redis() as redis:
        assert redis.pexpire(stack.keys.secret(secret_digest(old)), 1)
    page.wait_for_timeout(50)
    assert not stack.verify(old)
    assert stack.verify(new)
    page.goto(token_url)
    expect(page.get_by_role("row", name=re.compile("TokenRotated"))).to_be_visible()


def test_a_change_without_its_csrf_token_is_refused(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    page.goto(f"{stack.url}/tokens/new")
    page.evaluate("document.querySelector('main form input[name=csrf_token]').remove()")
    page.get_by_label("Name", exact=True).fill("forged")
    page.get_by_label("entities").select_option("read")
    page.get_by_role("button", name="Generate token").click()
    expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    forged = page.request.post(
        f"{stack.url}/tokens", form={"name": "forged", "scope-entities": "read"}
    )
    assert forged.status == 403
    page.goto(f"{stack.url}/tokens?q=forged&all=1")
    expect(page.get_by_role("status")).to_contain_text("No tokens match")


def test_a_removed_administrator_is_refused_from_the_next_request(page: Page, stack: Stack) -> None:
    with stack.redis() as redis:
        redis.sadd(stack.keys.admins, "bob")
    sign_in(page, stack, "bob")
    page.goto(f"{stack.url}/tokens/new")
    page.get_by_label("Name", exact=True).fill("after-removal")
    page.get_by_label("entities").select_option("read")
    with stack.redis() as redis:
        redis.srem(stack.keys.admins, "bob")
    page.get_by_role("button", name="Generate token").click()
    expect(page.get_by_role("heading", name="You are not an administrator")).to_be_visible()
    page.goto(f"{stack.url}/tokens")
    expect(page.get_by_role("heading", name="You are not an administrator")).to_be_visible()
    with stack.redis() as redis:
        assert not any(
            redis.hget(stack.keys.token(token_id), "name") == "after-removal"
            for token_id in redis.lrange(stack.keys.ids, 0, -1)
        )


def test_someone_who_is_not_an_administrator_is_refused(page: Page, stack: Stack) -> None:
    page.goto(stack.link("mallory"))
    expect(page.get_by_role("heading", name="You are not an administrator")).to_be_visible()
    expect(page.get_by_text("tokenctl admins add mallory")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
