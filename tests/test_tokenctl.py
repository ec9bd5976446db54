"""tokenctl through typer's runner, against a real redis-server and a running service."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from typer.testing import CliRunner

from contracts.token_format import mint
from tests.conftest import ADMIN
from tests.processes import service_process
from token_service.keys import Keys
from token_service.redis.embedded import EmbeddedRedis, free_port
from token_service.settings import ServiceSettings
from tokenctl.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def env(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A running service (with its audit worker) and the environment tokenctl reads."""
    settings = ServiceSettings(
        trust_shared_stream=True,
        redis_url=redis_server.url,
        http_port=None,
        key_prefix=f"cli{uuid.uuid4().hex[:8]}",
        admins=[ADMIN],
        resources=["entities", "reports"],
    )
    log = tmp_path_factory.mktemp("cli") / "service.log"
    with service_process(settings, log, "--with-audit-worker"):
        client = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 20
        while not client.exists(Keys(settings.key_prefix).usage):
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)
        client.close()
        yield {
            "REDIS_URL": redis_server.url,
            "TOKENS_KEY_PREFIX": settings.key_prefix,
            "TOKENS_RESOURCES": "entities,reports",
            "TOKENS_ACTOR": ADMIN,
            "TOKENS_TIMEOUT": "10",
            "COLUMNS": "220",
        }


def tokenctl(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str]:
    """Run one command; returns the exit code and what it printed."""
    result = runner.invoke(app, list(args), env=env, input=stdin)
    return result.exit_code, result.output


def generate(env: dict[str, str], name: str, *extra: str) -> dict[str, object]:
    """Generate through the CLI and return the reply."""
    code, out = tokenctl(
        env, "generate", "--name", name, "--scope", "entities:read", *extra, "--json"
    )
    assert code == 0, out
    reply: dict[str, object] = orjson.loads(out)
    return reply


def test_generate_prints_the_token_once_with_a_warning(env: dict[str, str]) -> None:
    code, out = tokenctl(env, "generate", "--name", "cli-human", "--scope", "entities:read")
    assert code == 0, out
    assert "only time it is shown" in out
    assert "tok_" in out


def test_generate_json_has_the_secret_and_the_view(env: dict[str, str]) -> None:
    reply = generate(env, "cli-json", "--expires-in", "90d", "--description", "ci")
    assert reply["ok"] is True
    assert isinstance(reply["secret"], str)
    token = reply["token"]
    assert isinstance(token, dict)
    assert token["name"] == "cli-json"
    assert token["created_by"] == ADMIN
    assert token["expires_at"] is not None


def test_unknown_scope_is_refused_before_sending_with_the_valid_ones(env: dict[str, str]) -> None:
    code, out = tokenctl(env, "generate", "--name", "x", "--scope", "entitys:read")
    assert code == 1
    assert "unknown scope entitys:read" in out
    assert "entities:read" in out


def test_rejection_exits_one_with_its_code(env: dict[str, str]) -> None:
    generate(env, "cli-taken")
    code, out = tokenctl(env, "generate", "--name", "cli-taken", "--scope", "entities:read")
    assert code == 1
    assert out.strip().startswith("error: conflict")
    code, out = tokenctl(env, "revoke", "01NOSUCH", "--yes", "--json")
    assert code == 1
    assert orjson.loads(out)["error"]["code"] == "not_found"


def test_list_show_revoke_rotate(env: dict[str, str]) -> None:
    reply = generate(env, "cli-life")
    token = reply["token"]
    assert isinstance(token, dict)
    token_id = str(token["id"])
    code, out = tokenctl(env, "list", "--json")
    assert code == 0
    assert token_id in [view["id"] for view in orjson.loads(out)]
    code, out = tokenctl(env, "list")
    assert "cli-life" in out
    assert "never" in out
    code, out = tokenctl(env, "show", token_id, "--json")
    assert orjson.loads(out)["name"] == "cli-life"
    code, out = tokenctl(env, "rotate", token_id, "--grace", "1h", "--json")
    assert code == 0
    assert orjson.loads(out)["secret"] != reply["secret"]
    code, out = tokenctl(env, "revoke", token_id, stdin="n\n")
    assert code == 1
    assert "Revoke token 'cli-life'" in out
    code, out = tokenctl(env, "revoke", token_id, "--reason", "done", stdin="y\n")
    assert code == 0, out
    code, out = tokenctl(env, "list", "--json")
    assert token_id not in [view["id"] for view in orjson.loads(out)]
    code, out = tokenctl(env, "list", "--all", "--json")
    assert {v["id"]: v["status"] for v in orjson.loads(out)}[token_id] == "revoked"
    code, out = tokenctl(env, "show", "01NOSUCH")
    assert code == 1
    assert "no token has id" in out


def test_verify_explains_the_answer(env: dict[str, str]) -> None:
    reply = generate(env, "cli-verify")
    secret = str(reply["secret"])
    code, out = tokenctl(env, "verify", secret, "--scope", "entities:read")
    assert code == 0
    assert out.startswith("accepted")
    code, out = tokenctl(env, "verify", secret, "--scope", "entities:write", "--json")
    assert code == 1
    assert orjson.loads(out)["reason"] == "insufficient_scope"
    code, out = tokenctl(env, "verify", "tok_nope", "--scope", "entities:read")
    assert code == 1
    assert "malformed" in out


def test_an_allowlist_is_set_shown_changed_and_verified_from_the_cli(
    env: dict[str, str],
) -> None:
    reply = generate(env, "cli-fenced", "--allow", "10.0.0.0/8", "--allow", "2001:DB8::/32")
    secret, token = str(reply["secret"]), reply["token"]
    assert isinstance(token, dict)
    assert token["allowed_cidrs"] == ["10.0.0.0/8", "2001:db8::/32"]
    code, out = tokenctl(
        env, "verify", secret, "--scope", "entities:read", "--client-ip", "10.1.1.1"
    )
    assert (code, out.split(":")[0]) == (0, "accepted")
    code, out = tokenctl(env, "verify", secret, "--scope", "entities:read")
    assert code == 1
    assert "ip_not_allowed" in out
    code, out = tokenctl(env, "update", str(token["id"]), "--allow", "10.0.0.7/24", "--json")
    assert code == 1
    assert "allowed_cidrs.0" in out  # refused before sending, the field named
    code, out = tokenctl(env, "update", str(token["id"]), "--allow-any")
    assert code == 0, out
    assert "any address" in out
    code, out = tokenctl(env, "verify", secret, "--scope", "entities:read")
    assert code == 0


def test_admins_add_list_remove(env: dict[str, str]) -> None:
    assert tokenctl(env, "admins", "add", "bob")[0] == 0
    code, out = tokenctl(env, "admins", "list", "--json")
    assert code == 0
    assert "bob" in orjson.loads(out)
    assert tokenctl(env, "admins", "remove", "bob")[0] == 0
    assert "bob" not in orjson.loads(tokenctl(env, "admins", "list", "--json")[1])


def test_removing_an_admin_the_setting_lists_says_it_still_acts(env: dict[str, str]) -> None:
    # The service's TOKENS_ADMINS lets ADMIN act whatever the set says; tokenctl, run in
    # the same environment, knows it.
    with_setting = {**env, "TOKENS_ADMINS": f"someone,{ADMIN}"}
    assert tokenctl(with_setting, "admins", "add", ADMIN)[0] == 0
    code, out = tokenctl(with_setting, "admins", "remove", ADMIN)
    assert code == 1
    admins_key = Keys(env["TOKENS_KEY_PREFIX"]).admins
    assert f"{ADMIN} was removed from the {admins_key} set but still acts" in out
    assert f"TOKENS_ADMINS setting lists {ADMIN}" in out
    assert "restart" in out
    assert ADMIN not in orjson.loads(tokenctl(env, "admins", "list", "--json")[1])
    generate(env, "cli-still-admin")  # it does still act
    code, out = tokenctl(with_setting, "admins", "remove", ADMIN, "--json")
    assert code == 1
    reply = orjson.loads(out)
    assert (reply["ok"], reply["removed"]) == (False, False)
    assert "TOKENS_ADMINS" in reply["error"]


def test_audit_shows_changes_and_refusals_newest_first(env: dict[str, str]) -> None:
    reply = generate(env, "cli-audit")
    token = reply["token"]
    assert isinstance(token, dict)
    tokenctl(env, "revoke", str(token["id"]), "--yes")
    tokenctl(env, "generate", "--name", "cli-audit", "--scope", "entities:read", "--actor", "eve")
    code, out = tokenctl(env, "audit", "--json", "--limit", "3")
    assert code == 0
    events = orjson.loads(out)
    assert [e["type"] for e in events] == ["CommandRejected", "TokenRevoked", "TokenCreated"]
    assert events[0]["actor"] == "eve"
    code, out = tokenctl(env, "audit", "--token", str(token["id"]), "--json")
    assert {e["type"] for e in orjson.loads(out)} == {"TokenCreated", "TokenRevoked"}


def test_stale_lists_never_used_tokens(env: dict[str, str]) -> None:
    generate(env, "cli-stale")
    code, out = tokenctl(env, "stale", "--json")
    assert code == 0
    assert "cli-stale" in [v["name"] for v in orjson.loads(out)["never_used"]]


def test_scan_finds_real_tokens_only_and_can_revoke_them(
    env: dict[str, str], tmp_path: Path
) -> None:
    reply = generate(env, "cli-leaked")
    secret = str(reply["secret"])
    lookalike = "tok_" + "A" * 38
    (tmp_path / "config.env").write_text(f"A=1\nAPI_TOKEN={secret}\nOTHER={lookalike}\n")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2" + secret.encode())
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(secret)
    code, out = tokenctl(env, "scan", str(tmp_path), "--json")
    assert code == 1
    findings = orjson.loads(out)["findings"]
    assert [(f["path"].endswith("config.env"), f["line"], f["status"]) for f in findings] == [
        (True, 2, "active")
    ]
    assert secret not in out
    code, out = tokenctl(env, "scan", str(tmp_path), "--revoke")
    assert code == 0, out
    assert "revoked" in out
    code, out = tokenctl(env, "scan", str(tmp_path))
    assert code == 0
    assert "[revoked]" in out


def test_scan_of_an_unknown_token_does_not_fail(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text(mint())
    code, out = tokenctl(env, "scan", str(tmp_path))
    assert code == 0
    assert "not found in Redis" in out


def test_service_not_running_is_said_plainly(env: dict[str, str]) -> None:
    silent = {**env, "TOKENS_KEY_PREFIX": "nobody-home", "TOKENS_TIMEOUT": "0.5"}
    code, out = tokenctl(silent, "generate", "--name", "x", "--scope", "entities:read")
    assert code == 1
    assert "did not answer within 0.5s" in out
    assert "make run" in out
    unreachable = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    code, out = tokenctl(unreachable, "list")
    assert code == 1
    assert "cannot reach Redis" in out


def test_bad_input_is_refused_in_one_line_before_sending(env: dict[str, str]) -> None:
    code, out = tokenctl(env, "generate", "--name", "has space", "--scope", "entities:read")
    assert code == 1
    assert out.startswith("error: invalid: name:")
    assert len(out.strip().splitlines()) == 1
    code, out = tokenctl(env, "rotate", "01ANY", "--grace", "30d", "--json")
    assert code == 1
    assert "grace_seconds" in orjson.loads(out)["error"]
    code, out = tokenctl(
        env, "generate", "--name", "x", "--scope", "entities:read", "--expires-in", "soon"
    )
    assert code == 1
    assert "not a duration" in out


def test_revoke_in_json_mode_needs_yes(env: dict[str, str]) -> None:
    code, out = tokenctl(env, "revoke", "01ANY", "--json")
    assert code == 1
    assert "--yes" in orjson.loads(out)["error"]


def test_scan_finds_a_token_glued_to_other_text(env: dict[str, str], tmp_path: Path) -> None:
    reply = generate(env, "cli-encoded")
    (tmp_path / "url.txt").write_text(f"https://x.example/?key%3D{reply['secret']}&a=1\n")
    (tmp_path / "env.sh").write_text(f"export API_TOKEN={reply['secret']}EOF\n")
    code, out = tokenctl(env, "scan", str(tmp_path), "--json")
    assert code == 1
    findings = orjson.loads(out)["findings"]
    assert len(findings) == 2
    assert {finding["status"] for finding in findings} == {"active"}


def test_scan_finds_a_token_behind_json_escapes(env: dict[str, str], tmp_path: Path) -> None:
    reply = generate(env, "cli-escaped")
    prefix, rest = str(reply["secret"]).split("_", 1)
    escaped = f"{prefix}\\u005f{rest}"  # what some JSON writers put for "_"
    (tmp_path / "dump.json").write_text(f'{{"headers": {{"authorization": "{escaped}"}}}}\n')
    code, out = tokenctl(env, "scan", str(tmp_path), "--json")
    assert code == 1
    (finding,) = orjson.loads(out)["findings"]
    assert finding["status"] == "active"


def test_redis_password_is_never_printed(env: dict[str, str]) -> None:
    url = f"redis://admin:s3cr3tpw@127.0.0.1:{free_port()}/0"
    code, out = tokenctl({**env, "REDIS_URL": url}, "list", "--json")
    assert code == 1
    assert "s3cr3tpw" not in out
    assert "127.0.0.1" in orjson.loads(out)["error"]
