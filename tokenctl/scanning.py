"""Finding leaked tokens in files: well-formed ones only, never printing the secret."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from contracts.token_format import (
    DEFAULT_PREFIX,
    decode_json_escapes,
    find_tokens,
    hint,
    secret_digest,
)

__all__ = ["Finding", "scan_paths"]

_SKIPPED_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "__pycache__"}
_MAX_FILE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Finding:
    """A token found at a file and line; only its hint and hash are kept."""

    path: Path
    line: int
    hint: str
    digest: str


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
                for name in sorted(names):
                    yield Path(root) / name
        elif path.is_file():
            yield path


def _text(path: Path) -> str | None:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:  # binary
        return None
    return data.decode("utf-8", "replace")


def scan_paths(paths: Iterable[Path], prefix: str = DEFAULT_PREFIX) -> list[Finding]:
    """Every well-formed token of ``prefix`` (valid checksum) in the text files under ``paths``.

    Text glued to either end (``key%3Dtok_…``, ``tok_…"abc``) does not hide a token, nor
    do JSON ``\\uXXXX`` escapes (``tok\\u005f…`` in a JSON dump).
    """
    findings: list[Finding] = []
    for path in _files(paths):
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for token in find_tokens(decode_json_escapes(line), prefix, glued=True):
                findings.append(Finding(path, number, hint(token), secret_digest(token)))
    return findings
