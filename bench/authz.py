"""The auth endpoint under ``wrk``, alone and behind nginx, each against its baseline.

``python -m bench.authz [--rounds 2] [--seconds 5] [--connections 50]`` starts a
throwaway redis-server (100 tokens with ``entities:read``), then takes turns, each
subject getting a 1 s warm-up and ``--seconds`` of ``wrk -t1 --latency`` per round,
every request with the next of the 100 tokens:

1. the endpoint's HTTP server with a trivial handler (a constant 200), the baseline of
2. the endpoint itself (``python -m authz``): a GET of ``/api/entities/42`` as nginx
   describes it (``X-Original-URI``, ``X-Original-Method``);
3. nginx proxying to an upstream without any check, the baseline of
4. the same nginx and upstream with ``auth_request`` to the endpoint
   (``deploy/nginx/authz.conf``, the file the README shows and the tests run).

The upstream is a ``return 200`` server block of the same nginx, so that it is never the
bottleneck and the difference between 3 and 4 is the auth subrequest. Everything listens
on loopback; the run takes about ``rounds * 4 * (seconds + 2)`` seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from bench.authz_setup import CHECK_HEADERS, Stage, cpu_seconds, stage, target, wait_listening
from bench.processes import spawn, stop
from bench.wrk import Figures, run_wrk
from tests.nginx import nginx
from token_service.redis.embedded import free_port

__all__ = ["main"]

TARGET_RATIO = 0.8
WARMUP_S = 1.0
PATH = "/api/entities/42"


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a subject serves: the URL to load, and the process whose CPU time is counted."""

    url: str
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run: wrk's figures, and the CPU the measured process spent on it."""

    figures: Figures
    cpu_s: float | None

    @property
    def per_cpu_second(self) -> float:
        """Requests answered per second of the measured process's CPU time."""
        if not self.cpu_s:
            return float("nan")
        return self.figures.requests / self.cpu_s


Subject = Callable[[Stage], AbstractContextManager[Loaded]]
"""Starts what is measured; yields what to load."""


@contextmanager
def endpoint(staged: Stage) -> Iterator[Loaded]:
    """``python -m authz`` itself, on a free port."""
    port = free_port()
    process = spawn(["-m", "authz"], {**staged.env, "AUTHZ_PORT": str(port)})
    try:
        wait_listening(port, process)
        yield Loaded(f"http://127.0.0.1:{port}/check", process.pid)
    finally:
        stop(process)


@contextmanager
def trivial(staged: Stage) -> Iterator[Loaded]:
    """The same HTTP server with a handler that answers a constant 200."""
    with target(staged.env, "httptools", "trivial") as (port, pid):
        yield Loaded(f"http://127.0.0.1:{port}/check", pid)


def _behind_nginx(with_auth: bool) -> Subject:
    @contextmanager
    def subject(staged: Stage) -> Iterator[Loaded]:
        listen, plain, app = free_port(), free_port(), free_port()
        upstream = f"    server {{ listen 127.0.0.1:{app}; location / {{ return 200; }} }}\n"
        no_auth = (
            f"    server {{ listen 127.0.0.1:{plain}; location / {{ proxy_pass http://app;"
            ' proxy_http_version 1.1; proxy_set_header Connection ""; } }\n'
        )
        with endpoint(staged) as check:
            authz_port = int(check.url.rsplit(":", 1)[1].split("/")[0])
            with nginx(listen, authz_port, app, upstream + no_auth):
                yield Loaded(f"http://127.0.0.1:{listen if with_auth else plain}{PATH}")

    return subject


SUBJECTS: dict[str, Subject] = {
    "endpoint: trivial handler": trivial,
    "endpoint: check": endpoint,
    "nginx -> upstream": _behind_nginx(False),
    "nginx + auth_request -> upstream": _behind_nginx(True),
}


def _measure(staged: Stage, subject: Subject, seconds: float, connections: int) -> Run:
    with subject(staged) as loaded:
        url, pid = loaded.url, loaded.pid
        headers = CHECK_HEADERS if url.endswith("/check") else {}
        run_wrk(url, staged.tokens, headers, seconds=WARMUP_S, connections=connections)
        before = cpu_seconds(pid) if pid is not None else 0.0
        figures = run_wrk(url, staged.tokens, headers, seconds=seconds, connections=connections)
        spent = cpu_seconds(pid) - before if pid is not None else None
        return Run(figures, spent)


def _median(runs: list[Run], field: str) -> float:
    if field == "per_cpu_second":
        return float(statistics.median(run.per_cpu_second for run in runs))
    return float(statistics.median(getattr(run.figures, field) for run in runs))


def _report(results: dict[str, list[Run]], options: argparse.Namespace) -> None:
    print(
        f"\nAuth endpoint benchmark: wrk -t1 -c{options.connections} --latency, "
        f"{options.seconds:g} s per run after {WARMUP_S:g} s warm-up, {options.rounds} rounds "
        f"taking turns (median shown); 100 tokens in turn; {os.cpu_count()} CPUs.\n"
    )
    print(f"{'subject':<34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'refused':>9}{'req/CPU-s':>11}")
    for label, runs in results.items():
        print(
            f"{label:<34}{_median(runs, 'per_second'):>10,.0f}{_median(runs, 'p50_ms'):>9.2f}"
            f"{_median(runs, 'p99_ms'):>9.2f}"
            f"{sum(r.figures.non_2xx + r.figures.errors for r in runs):>9}"
            f"{_median(runs, 'per_cpu_second'):>11,.0f}"
        )
    labels = list(results)
    rates = [_median(results[label], "per_second") for label in labels]
    ratio = rates[1] / rates[0]
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(f"\nendpoint check / trivial handler: {ratio:.2f}x requests/s", end="")
    print(f" (target >= {TARGET_RATIO:g}x) {verdict}")
    # Requests per CPU-second of the server alone: what the check costs, read even when
    # other work on the machine takes turns with the server and wrk.
    per_cpu = [_median(results[label], "per_cpu_second") for label in labels[:2]]
    print(f"endpoint check / trivial handler: {per_cpu[1] / per_cpu[0]:.2f}x requests/CPU-s")
    p50 = [_median(results[label], "p50_ms") for label in labels[2:]]
    print(
        f"nginx with auth_request / without: {rates[3] / rates[2]:.2f}x requests/s, "
        f"p50 {p50[1] - p50[0]:+.2f} ms"
    )


def main() -> None:
    """Measure every subject in turn, then print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.authz", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    options = parser.parse_args()
    results: dict[str, list[Run]] = {label: [] for label in SUBJECTS}
    with stage() as staged:
        for _ in range(options.rounds):
            for label, subject in SUBJECTS.items():
                results[label].append(
                    _measure(staged, subject, options.seconds, options.connections)
                )
    _report(results, options)


if __name__ == "__main__":
    main()
