"""Text that came from Redis or a command, shown as the characters it holds.

Names, descriptions, actors, reasons and messages are written by whoever can send a
command or reach Redis. Shown as they are, ``[/]`` breaks Rich's markup parser,
``[link=...]`` turns into a link, ``ESC[2J`` clears the operator's screen and U+202E
reverses the text after it. :func:`literal` is the one way tokenctl shows such text.
"""

from __future__ import annotations

from rich.text import Text

__all__ = ["literal"]


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def literal(value: object) -> Text:
    """``value`` as Rich text that shows exactly what it holds.

    Markup is not interpreted, and every character that would act on the terminal or
    hide itself is written as a visible escape (``\\x1b``, ``\\u202e``): C0 and C1
    controls, DEL, bidirectional and other formatting characters, separators other than
    the space, and unassigned code points (what ``str.isprintable`` refuses, as ``repr``
    does). Use ``.plain`` for a ``str``.
    """
    text = str(value)
    if not text.isprintable():
        text = "".join(char if char.isprintable() else _escape(char) for char in text)
    return Text(text)
