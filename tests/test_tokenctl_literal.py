"""tokenctl.literal: untrusted text shown as the characters it holds, nothing else."""

from __future__ import annotations

import pytest
from rich.console import Console

from tokenctl.literal import literal

BIDI_AND_INVISIBLE = [
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    *(chr(c) for c in range(0x202A, 0x202F)),  # embeddings and overrides
    *(chr(c) for c in range(0x2066, 0x206A)),  # isolates
    "\u061c",  # Arabic letter mark
    "\u200b",  # zero-width space
    "\ufeff",  # byte order mark
    "\u2028",  # line separator
]


def shown(value: object) -> str:
    """What a terminal would receive for ``value`` rendered by Rich."""
    console = Console(width=200, force_terminal=True, color_system=None)
    with console.capture() as capture:
        console.print(literal(value), end="")
    return capture.get()


@pytest.mark.parametrize(
    "text",
    ["x[/]", "[link=https://evil.example]click[/link]", "[bold red]boss[/]", "[entities:read]"],
)
def test_markup_is_shown_not_interpreted(text: str) -> None:
    assert shown(text) == text


@pytest.mark.parametrize("code", [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)])
def test_every_control_character_is_escaped(code: int) -> None:
    assert shown(f"a{chr(code)}b") == f"a\\x{code:02x}b"


@pytest.mark.parametrize("char", BIDI_AND_INVISIBLE)
def test_bidi_and_invisible_formatting_characters_are_escaped(char: str) -> None:
    assert shown(f"a{char}b") == f"a\\u{ord(char):04x}b"


def test_a_screen_clearing_description_is_shown_as_text() -> None:
    assert shown("wipe\x1b[2J\x00done") == "wipe\\x1b[2J\\x00done"


def test_ordinary_text_of_any_script_is_left_alone() -> None:
    text = "ci-deploy é 日本語 Ελληνικά עברית 😀 a\\b"
    assert shown(text) == text
    assert literal(text).plain == text
