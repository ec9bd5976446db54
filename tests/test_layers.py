"""The shape of the house: what a gateway loads, and how big functions and modules grow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("contracts", "token_service", "workers", "tokenctl", "specs", "console", "authz")


def _loaded_after(statement: str, candidates: tuple[str, ...]) -> list[str]:
    probe = (
        f"import sys\n{statement}\nprint(' '.join(m for m in {candidates!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return out.stdout.split()


def test_a_gateway_import_loads_neither_faststream_nor_aiohttp_nor_structlog() -> None:
    heavy = ("faststream", "aiohttp", "structlog", "pydantic_settings", "typer", "rich")
    assert _loaded_after("import token_service.gateway", heavy) == []
    assert _loaded_after("from token_service.gateway import Verifier, UsageReporter", heavy) == []


def test_tokenctl_does_not_load_faststream() -> None:
    assert _loaded_after("import tokenctl.cli", ("faststream", "aiohttp")) == []


def test_the_auth_endpoint_loads_no_faststream() -> None:
    assert _loaded_after("import authz.__main__, authz.app", ("faststream", "typer")) == []


def _python_files() -> list[Path]:
    return [f for package in PACKAGES for f in (ROOT / package).rglob("*.py")]


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_300_lines_and_no_function_over_60(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 300, f"{path.name}: split it by responsibility"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 60, f"{path.name}:{node.name} is {length} lines"
