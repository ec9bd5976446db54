"""After everything else: no plaintext token in any key, stream entry, log line or file.

Named to run last, so that its scan of every key also covers what earlier tests left,
and its scan of every process log (under the session's temporary directory) every log
that earlier tests' processes wrote.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from contracts.token_format import mint
from tests.conftest import ADMIN, wait_for
from tests.leaks import aof_settled, tokens_in_files, tokens_in_lines, tokens_in_redis
from tests.processes import service_process
from tests.streams import listening, send_raw
from token_service.client import TokenClient
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis
from token_service.settings import ServiceSettings


async def test_no_plaintext_token_anywhere(
    client: TokenClient,
    redis: Redis,
    keys: Keys,
    settings: ServiceSettings,
    captured_logs: io.StringIO,
) -> None:
    created = await client.generate("leak-check", ["entities:read"], description="audit")
    assert created.token is not None
    assert created.secret is not None
    rotated = await client.rotate(created.token.id, grace_seconds=600)
    assert rotated.secret is not None
    secrets = [created.secret, rotated.secret]
    async with listening(redis, f"{keys.prefix}:replies:r-leak") as replies:
        pasted = {
            "type": "RevokeToken",
            "command_id": "c-leak",
            "actor": ADMIN,
            "token_id": created.token.id,
            "reason": f"leaked {created.secret}",
            "reply_to": f"{keys.prefix}:replies:r-leak",
        }
        await send_raw(redis, keys.commands, data=pasted)
        unknown = {
            "type": "Oops",
            "secret": rotated.secret,
            "reply_to": f"{keys.prefix}:replies:r-leak",
        }
        await send_raw(redis, keys.commands, data=unknown)
        await replies.wait_for("c-leak")
        await replies.wait_for(None)
    assert (await client.revoke(created.token.id)).ok

    leaks = await tokens_in_redis(settings.redis_url or "")
    assert leaks == [], f"plaintext tokens stored in Redis: {[key for key, _ in leaks]}"
    log_lines = captured_logs.getvalue().splitlines()
    assert log_lines, "the service logged nothing: the log check would prove nothing"
    assert tokens_in_lines(log_lines) == []
    assert all(secret not in captured_logs.getvalue() for secret in secrets)


def _disk_files(server: EmbeddedRedis) -> list[Path]:
    return [path for path in server.directory.rglob("*") if path.is_file()]


@pytest.fixture
def aof_server() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own that writes every command to its append-only file.

    Without the RDB preamble the rewritten file is commands in plain text, so a scan of
    its bytes sees every string (an RDB body may compress them).
    """
    server = EmbeddedRedis.start(appendonly=True, extra_args=("--aof-use-rdb-preamble", "no"))
    yield server
    server.stop()


@pytest.mark.slow
async def test_no_plaintext_token_in_the_append_only_file_on_disk(
    aof_server: EmbeddedRedis, settings: ServiceSettings, tmp_path: Path
) -> None:
    on_aof = settings.model_copy(update={"redis_url": aof_server.url})
    keys = Keys(on_aof.key_prefix)
    redis = Redis.from_url(aof_server.url, decode_responses=True)
    pasted_early = [mint(), mint("acme")]
    try:
        # Written before the service runs: the scan must see them in the file, or it
        # would prove nothing later.
        await send_raw(redis, keys.commands, data=f"not json {pasted_early[0]}X")
        await send_raw(redis, keys.commands, data={"type": "Oops"}, note=pasted_early[1])
        found = {token for _, token in tokens_in_files(_disk_files(aof_server))}
        assert set(pasted_early) <= found, "the scan does not see what is in the file"

        log = tmp_path / "service-aof.log"
        with service_process(on_aof, log, "--with-audit-worker"):
            async with TokenClient(redis, actor=ADMIN, key_prefix=keys.prefix, timeout=20) as c:
                created = await c.generate("aof-check", ["entities:read"], description="audit")
                assert created.token is not None
                assert created.secret is not None
                rotated = await c.rotate(created.token.id, grace_seconds=600)
                assert rotated.secret is not None
                secrets = [created.secret, rotated.secret]
                async with listening(redis, f"{keys.prefix}:replies:r-aof") as replies:
                    for fields in _pasted(
                        created.token.id, secrets, f"{keys.prefix}:replies:r-aof"
                    ):
                        await send_raw(redis, keys.commands, **fields)
                    for command_id in ("c-aof-0", "c-aof-1", "c-aof-2", "c-aof-6", None):
                        reply = await replies.wait_for(command_id, limit_s=20)
                        assert not reply.ok, f"{command_id} was applied"
                assert (await c.revoke(created.token.id, reason="done")).ok

            async def scrubbed() -> bool:
                if not await aof_settled(redis):
                    return False
                return tokens_in_files(_disk_files(aof_server)) == []

            await wait_for(scrubbed, limit_s=30)
            rewrites = int((await redis.info("persistence"))["aof_rewrites"])
        on_disk = b"".join(path.read_bytes() for path in _disk_files(aof_server))
    finally:
        await redis.aclose()
    print(
        f"\nFIGURES leaks-aof: tokens_in_file_before_service={len(found)}"
        f" pasted_commands={len(_pasted('x', ['a', 'b'], 'c'))} aof_rewrites={rewrites}"
        f" files={len(_disk_files(aof_server))} bytes_scanned={len(on_disk)} tokens_after=0"
    )
    assert all(s.encode() not in on_disk for s in [*secrets, *pasted_early])
    assert keys.commands.encode() in on_disk, "the file holds none of the service's keys"
    assert rewrites >= 1
    assert await tokens_in_redis(aof_server.url) == []
    assert "aof_rewrite_requested" in log.read_text()


def _pasted(token_id: str, secrets: list[str], channel: str) -> list[dict[str, object]]:
    """Commands with a real secret pasted in, in the forms the fuzz test tries."""
    first, second = secrets
    revoke = {"type": "RevokeToken", "actor": ADMIN, "token_id": token_id, "reply_to": channel}
    return [
        {"data": {**revoke, "command_id": "c-aof-0", "reason": f"leaked {first}X"}},
        {"data": {**revoke, "command_id": "c-aof-1", "reason": "see note"}, "note": second},
        {"data": {**revoke, "command_id": "c-aof-2", f"x{second}": 1}},
        {"data": f'{{"command_id": "c-aof-3", "reason": "{first}"'},
        {"data": {"type": "Oops", "secret": second}},
        {"__data__": orjson.dumps({"data": f"x{first}", "headers": {"reply_to": channel}})},
        {
            "data": orjson.dumps({**revoke, "command_id": "c-aof-6", "reason": "x"}).replace(
                b'"x"', f'"{first.replace("_", chr(92) + "u005f")}"'.encode()
            )
        },
    ]


def test_no_plaintext_token_in_any_process_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every service and worker process of the whole run logged under the session's temp dir."""
    logs = sorted(tmp_path_factory.getbasetemp().rglob("*.log"))
    assert logs, "no process logs: this check would prove nothing"
    lines = [line for path in logs for line in path.read_text(errors="replace").splitlines()]
    leaks = tokens_in_lines(lines)
    print(f"\nFIGURES leaks: process_logs={len(logs)} log_lines={len(lines)} tokens={len(leaks)}")
    assert leaks == [], f"{len(leaks)} plaintext tokens in process logs"
