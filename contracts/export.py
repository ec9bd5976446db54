"""``python -m contracts.export DIR``: write one JSON Schema file per message into DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contracts.schemas import json_schemas

__all__ = ["render", "write"]


def render(schema: object) -> str:
    """The committed text of one schema: stable key order, two-space indent."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> list[Path]:
    """Write every schema; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
