"""Running ``wrk`` against a loopback URL and reading its figures.

Each request carries ``Authorization: Bearer`` with the next of a list of tokens (a Lua
script rotates them; they reach it in the environment, never in a file) and the fixed
headers given, so every subject sees the same load.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Figures", "run_wrk"]

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True, slots=True)
class Figures:
    """What one wrk run measured."""

    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    """Socket errors: connect, read, write, timeout."""


def _lua(headers: Mapping[str, str]) -> str:
    # The tokens come in the environment, not in the script: a token is never written to
    # disk, not even a benchmark's.
    fixed = "\n".join(f'  h["{name}"] = "{value}"' for name, value in headers.items())
    return f"""
local tokens = {{}}
for token in string.gmatch(os.getenv("WRK_TOKENS"), "%S+") do
  tokens[#tokens + 1] = token
end
local i = 0
request = function()
  i = i + 1
  local h = {{}}
{fixed}
  h["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]
  return wrk.format(nil, nil, h)
end
"""


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _parse(out: str) -> Figures:
    def number(pattern: str) -> str:
        found = re.search(pattern, out)
        return found.group(1) if found else "0"

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Figures(
        requests=int(number(r"(\d+) requests in")),
        per_second=float(number(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(number(r"50%\s+(\S+)")),
        p99_ms=_ms(number(r"99%\s+(\S+)")),
        non_2xx=int(number(r"Non-2xx or 3xx responses: (\d+)")),
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(
    url: str,
    tokens: Sequence[str],
    headers: Mapping[str, str],
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
) -> Figures:
    """One ``wrk --latency`` run of ``seconds`` against ``url`` (loopback only)."""
    assert url.startswith(("http://127.0.0.1:", "http://[::1]:")), "benchmarks stay on loopback"
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is missing: apt-get install wrk (see .ci/run)")
    with tempfile.TemporaryDirectory(prefix="authz-wrk-") as directory:
        script = Path(directory) / "tokens.lua"
        script.write_text(_lua(headers))
        command = [binary, "--latency", "-t", str(threads), "-c", str(connections)]
        command += ["-d", f"{seconds:g}s", "-s", str(script), url]
        environment = {**os.environ, "WRK_TOKENS": " ".join(tokens)}
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
            env=environment,
        )
    return _parse(done.stdout)
