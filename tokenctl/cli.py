"""The ``tokenctl`` console script: every command, registered on one Typer app."""

from __future__ import annotations

from tokenctl import inspection, lifecycle, updates
from tokenctl.base import app

__all__ = ["app", "main"]
_REGISTERED = (lifecycle, inspection, updates)  # importing them registers their commands


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tokenctl")


if __name__ == "__main__":
    main()
