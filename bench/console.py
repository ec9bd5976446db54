"""``python -m bench.console``: the web console under 20 concurrent administrators.

Starts its own redis-server, the token service (with ``console:delegating``) and the
console, signs 20 administrators in with one-time links, seeds 1,000 tokens, then has
every administrator load pages at once: the console's trivial page (``/livez``, the
baseline: the same server, no Redis), the token list, and the generate round trip
(the form, then the post that waits for the service's reply). Prints p50 and p99 each.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import redis

from bench.processes import clean_env, spawn, stop
from console.sessions import digest
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis, free_port

ADMINS = 20
ROUNDS = 25
SEED = 1_000
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


async def _wait(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(400):
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


async def _admin(
    base: str, keys: Keys, store: redis.Redis, name: str
) -> tuple[httpx.AsyncClient, str]:
    code = uuid.uuid4().hex
    store.set(keys.console_link(digest(code)), name, ex=300)
    client = httpx.AsyncClient(base_url=base, timeout=30)
    await client.get(f"/sign-in/link?code={code}")
    found = _CSRF.search((await client.get("/tokens/new")).text)
    assert found is not None, "sign-in failed"
    return client, found.group(1)


async def _measure(
    admins: list[tuple[httpx.AsyncClient, str]],
    step: Callable[[httpx.AsyncClient, str, int], Awaitable[None]],
) -> list[float]:
    timings: list[float] = []

    async def one(client: httpx.AsyncClient, csrf: str, index: int) -> None:
        for round_ in range(ROUNDS):
            started = time.perf_counter()
            await step(client, csrf, index * ROUNDS + round_)
            timings.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(one(c, t, i) for i, (c, t) in enumerate(admins)))
    return timings


async def _trivial(client: httpx.AsyncClient, _csrf: str, _n: int) -> None:
    assert (await client.get("/livez")).status_code == 200


async def _list(client: httpx.AsyncClient, _csrf: str, _n: int) -> None:
    assert (await client.get("/tokens")).status_code == 200


async def _generate(client: httpx.AsyncClient, csrf: str, n: int) -> None:
    await client.get("/tokens/new")
    form = {"csrf_token": csrf, "name": f"bench-{n}", "scope-entities": "read", "expiry": "90"}
    answer = await client.post("/tokens", data=form)
    assert answer.status_code == 200, answer.status_code
    assert "shown once" in answer.text


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _run(base: str, keys: Keys, store: redis.Redis) -> None:
    await _wait(f"{base}/livez")
    admins = [await _admin(base, keys, store, f"admin-{i}") for i in range(ADMINS)]
    seeder = admins[0]
    await asyncio.gather(*(_generate(seeder[0], seeder[1], -1 - n) for n in range(0, 20)))
    for start in range(20, SEED, 100):
        await asyncio.gather(
            *(_generate(seeder[0], seeder[1], -1 - n) for n in range(start, start + 100))
        )
    print(f"{ADMINS} administrators, {ROUNDS} requests each per page, {SEED} tokens seeded")
    print(f"{'page':<28}{'p50 ms':>10}{'p99 ms':>10}{'x trivial p50':>16}")
    baseline = 0.0
    for label, step in (
        ("trivial (/livez)", _trivial),
        ("token list (/tokens)", _list),
        ("generate round trip", _generate),
    ):
        timings = await _measure(admins, step)
        p50, p99 = statistics.median(timings), _percentile(timings, 0.99)
        baseline = baseline or p50
        print(f"{label:<28}{p50:>10.1f}{p99:>10.1f}{p50 / baseline:>16.1f}")
    for client, _ in admins:
        await client.aclose()


def main() -> int:
    """Run the benchmark and print the table."""
    server = EmbeddedRedis.start()
    keys = Keys("tokens")
    store = redis.Redis.from_url(server.url, decode_responses=True)
    store.sadd(keys.admins, *(f"admin-{i}" for i in range(ADMINS)))
    port = free_port()
    env = {**clean_env(), "REDIS_URL": server.url, "LOG_LEVEL": "WARNING"}
    service = spawn(["-m", "token_service"], {**env, "TOKENS_PUBLISHERS": "console:delegating"})
    console = spawn(
        ["-m", "console"], {**env, "CONSOLE_PORT": str(port), "CONSOLE_SIGN_IN_LINKS": "true"}
    )
    try:
        asyncio.run(_run(f"http://127.0.0.1:{port}", keys, store))
    finally:
        stop(console)
        stop(service)
        store.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
