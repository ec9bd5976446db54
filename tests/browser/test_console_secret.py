"""A new secret is on one page, once: not after Back or reload, and kept nowhere else."""

from __future__ import annotations

import contextlib
from pathlib import Path

from playwright.sync_api import Error, Page, Playwright, Response, expect

from tests.console_stack import CHROMIUM, CHROMIUM_ARGS, Stack, generate, sign_in


def _files_holding(directory: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in directory.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _settled_content(page: Page) -> str:
    # After Back or reload the page may still be navigating (a resent form, an error page).
    for _ in range(50):
        with contextlib.suppress(Error):
            page.wait_for_load_state()
            return page.content()
        page.wait_for_timeout(100)
    return page.content()


def test_the_secret_is_shown_once_and_kept_nowhere(
    playwright: Playwright, stack: Stack, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS
    )
    visited: list[str] = []
    responses: list[Response] = []
    page = context.new_page()
    page.on("request", lambda request: visited.append(request.url))
    page.on("response", lambda response: responses.append(response))
    sign_in(page, stack)
    secret = generate(page, stack, "shown-once")
    assert secret.startswith("tok_")
    posted = [r for r in responses if r.request.method == "POST" and r.url.endswith("/tokens")]
    assert posted[-1].headers["cache-control"] == "no-store"

    page.get_by_role("link", name="I have copied it: go to the token").click()
    expect(page.get_by_role("heading", name="shown-once")).to_be_visible()
    with contextlib.suppress(Error):  # Chromium shows no POST result from no cache
        page.go_back()
    assert secret not in _settled_content(page)
    with contextlib.suppress(Error):  # sends the form again: the same command, a duplicate
        page.reload()
    assert secret not in _settled_content(page)
    if "already generated" not in _settled_content(page):
        page.goto(f"{stack.url}/tokens")

    storage = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert secret not in storage
    assert all(secret not in cookie["value"] for cookie in context.cookies())
    assert all(secret not in url for url in visited)
    context.close()
    assert _files_holding(profile, secret) == [], "the browser kept the secret on disk"
    assert secret not in stack.log_text()
    with stack.redis() as redis:
        for key in redis.scan_iter(f"{stack.keys.console_prefix}*"):
            assert secret not in str(redis.get(key))


def test_the_duplicate_of_a_generate_shows_no_secret(
    playwright: Playwright, stack: Stack, tmp_path: Path
) -> None:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page()
    sign_in(page, stack)
    page.goto(f"{stack.url}/tokens/new")
    command_id = page.locator("input[name=command_id]").input_value()
    page_started = page.locator("input[name=started]").input_value()
    page.get_by_label("Name", exact=True).fill("twice")
    page.get_by_label("entities").select_option("read")
    page.get_by_role("button", name="Generate token").click()
    secret = page.get_by_label("Token", exact=True).input_value()
    csrf = page.locator("main form input[name=csrf_token]").count()
    assert csrf == 0  # the shown-once page has no form but sign-out
    again = page.request.post(
        f"{stack.url}/tokens",
        form={
            "name": "twice",
            "scope-entities": "read",
            "expiry": "90",
            "command_id": command_id,
            "started": page_started,
            "csrf_token": page.locator("header input[name=csrf_token]").input_value(),
        },
    )
    assert again.status == 200
    assert "already generated" in again.text()
    assert secret not in again.text()
    browser.close()
