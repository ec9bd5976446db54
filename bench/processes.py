"""Starting and stopping the processes a benchmark measures, the same way for each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "clean_env", "spawn", "stop"]

ROOT = Path(__file__).resolve().parent.parent


def clean_env() -> dict[str, str]:
    """This environment less any service setting, so each run configures its own.

    Health and metrics endpoints go to free ports, so that several processes can run.
    """
    return {
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("TOKENS_", "AUDIT_")) and name not in ("REDIS_URL", "LOG_LEVEL")
        },
        "TOKENS_HTTP_PORT": "0",
        "AUDIT_HTTP_PORT": "0",
    }


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """This Python, in the repository, with no terminal output."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
