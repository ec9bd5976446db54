"""Which HTTP server the auth endpoint should use: measured with wrk, on loopback.

``python -m bench.authz_servers [--rounds 2] [--seconds 5] [--connections 50]`` starts a
throwaway redis-server with 100 tokens, then, in each round, serves each of two handlers
with each of two servers in turn and loads it with ``wrk`` (one thread, 50 connections,
a token per request taken in turn from the 100):

- servers: ``httptools`` (the endpoint's own asyncio protocol with the llhttp parser)
  and ``aiohttp`` (its low-level ``web.Server``, no router);
- handlers: ``trivial`` (a constant 200) and ``check`` (the real check: routes, verifier
  against Redis, usage reporter).

It prints requests/s and latency per subject (median over rounds) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench.authz_setup import CHECK_HEADERS, stage, target
from bench.wrk import Figures, run_wrk

__all__ = ["main"]

SERVERS = ("httptools", "aiohttp")
HANDLERS = ("trivial", "check")
WARMUP_S = 1.0


def _median(runs: list[Figures], field: str) -> float:
    return float(statistics.median(getattr(run, field) for run in runs))


def main() -> None:
    """Measure, then print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.authz_servers")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    options = parser.parse_args()
    results: dict[tuple[str, str], list[Figures]] = {}
    started = time.monotonic()
    with stage() as staged:
        for _ in range(options.rounds):
            for server in SERVERS:
                for handler in HANDLERS:
                    with target(staged.env, server, handler) as (port, _pid):
                        url = f"http://127.0.0.1:{port}/check"
                        load = {"connections": options.connections}
                        run_wrk(url, staged.tokens, CHECK_HEADERS, seconds=WARMUP_S, **load)
                        figures = run_wrk(
                            url, staged.tokens, CHECK_HEADERS, seconds=options.seconds, **load
                        )
                    results.setdefault((server, handler), []).append(figures)
    print(
        f"\nHTTP servers for the auth endpoint: wrk -t1 -c{options.connections}, "
        f"{options.seconds:g} s per run after {WARMUP_S:g} s warm-up, {options.rounds} rounds "
        f"(median shown); {os.cpu_count()} CPUs; {time.monotonic() - started:.0f} s in all.\n"
    )
    print(f"{'server':<11}{'handler':<9}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for (server, handler), runs in results.items():
        print(
            f"{server:<11}{handler:<9}{_median(runs, 'per_second'):>10,.0f}"
            f"{_median(runs, 'p50_ms'):>9.2f}{_median(runs, 'p99_ms'):>9.2f}"
            f"{sum(r.non_2xx + r.errors for r in runs):>9}"
        )
    print()
    for handler in HANDLERS:
        ours = _median(results[("httptools", handler)], "per_second")
        other = _median(results[("aiohttp", handler)], "per_second")
        print(f"{handler}: httptools / aiohttp = {ours / other:.2f}x")
    for server in SERVERS:
        check = _median(results[(server, "check")], "per_second")
        base = _median(results[(server, "trivial")], "per_second")
        print(f"{server}: check / trivial = {check / base:.2f}x")


if __name__ == "__main__":
    main()
