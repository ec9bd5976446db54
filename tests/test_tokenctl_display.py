"""What tokenctl prints for people: untrusted text shown literally, tables that fit."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import orjson
import redis

from tests import test_tokenctl as cli
from token_service.keys import Keys

env = cli.env  # the module's own running service, as in test_tokenctl
tokenctl = cli.tokenctl

HOSTILE_ACTORS = {
    # what an actor holds -> how tokenctl must show it
    "x[/]": "x[/]",
    "[link=https://evil.example]click[/link]": "[link=https://evil.example]click[/link]",
    "[bold red]boss[/]": "[bold red]boss[/]",
    "eve\u202eevil\x9b[2J": "eve\\u202eevil\\x9b[2J",
}
HOSTILE_NAME = "[bold red]evil[/]\x1b[2J\u202e"
HOSTILE_NAME_SHOWN = "[bold red]evil[/]\\x1b[2J\\u202e"
RAW = ("\x1b", "\x00", "\x9b", "\u202e")


def generate(env: dict[str, str], name: str, *extra: str) -> str:
    """Generate a token through the CLI; returns its id."""
    code, out = tokenctl(env, "generate", "--name", name, *extra, "--json")
    assert code == 0, out
    return str(orjson.loads(out)["token"]["id"])


def rename_in_redis(env: dict[str, str], token_id: str, name: str) -> None:
    """Give a stored token a name no command could, as anyone who can write to Redis may."""
    with redis.Redis.from_url(env["REDIS_URL"]) as client:
        client.hset(Keys(env["TOKENS_KEY_PREFIX"]).token(token_id), "name", name)


def send_raw(env: dict[str, str], command: dict[str, object]) -> None:
    """Put a command on the stream as any Redis client may, tokenctl's checks bypassed."""
    with redis.Redis.from_url(env["REDIS_URL"]) as client:
        client.xadd(Keys(env["TOKENS_KEY_PREFIX"]).commands, {"data": orjson.dumps(command)})


def test_audit_shows_hostile_actors_as_they_are(env: dict[str, str]) -> None:
    for number, actor in enumerate(HOSTILE_ACTORS):
        command = {"type": "GenerateToken", "command_id": f"hostile-{number}", "actor": actor}
        send_raw(env, {**command, "name": "x", "scopes": ["entities:read"]})
    deadline = time.monotonic() + 10
    while True:  # each is refused (not an administrator), and the refusal audited
        code, out = tokenctl(env, "audit", "--limit", str(len(HOSTILE_ACTORS)), "--json")
        assert code == 0, out
        if {event["actor"] for event in orjson.loads(out)} == set(HOSTILE_ACTORS):
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
    code, out = tokenctl(env, "audit", "--limit", str(len(HOSTILE_ACTORS)))
    assert code == 0, out
    for shown in HOSTILE_ACTORS.values():
        assert shown in out
    assert not any(raw in out for raw in RAW)


def test_audit_keeps_scopes_and_reasons_as_written(env: dict[str, str]) -> None:
    token_id = generate(env, "cli-bracket", "--scope", "entities:read", "--scope", "reports:write")
    reason = "[bold]leaked[/] in \x1b[31mchat\u2066"
    assert tokenctl(env, "revoke", token_id, "--yes", "--reason", reason)[0] == 0
    code, out = tokenctl(env, "audit", "--token", token_id)
    assert code == 0, out
    assert "cli-bracket [entities:read reports:write]" in out
    assert "reason: [bold]leaked[/] in \\x1b[31mchat\\u2066" in out


def test_show_prints_a_hostile_description_as_text(env: dict[str, str]) -> None:
    description = "wipe\x1b[2J\x00screen \u202eexe.txt"
    token_id = generate(env, "cli-ansi", "--scope", "entities:read", "--description", description)
    code, out = tokenctl(env, "show", token_id)
    assert code == 0, out
    assert "wipe\\x1b[2J\\x00screen \\u202eexe.txt" in out
    assert not any(raw in out for raw in RAW)
    code, out = tokenctl(env, "show", token_id, "--json")
    assert orjson.loads(out)["description"] == description


def test_a_name_written_straight_into_redis_is_shown_literally(env: dict[str, str]) -> None:
    token_id = generate(env, "cli-renamed", "--scope", "entities:read")
    rename_in_redis(env, token_id, HOSTILE_NAME)
    for command in (["list"], ["stale"], ["show", token_id]):
        code, out = tokenctl(env, *command)
        assert code == 0, out
        assert HOSTILE_NAME_SHOWN in out, command
        assert not any(raw in out for raw in RAW), command
    code, out = tokenctl(env, "revoke", token_id, stdin="n\n")
    assert HOSTILE_NAME_SHOWN in out
    code, out = tokenctl(env, "list", "--json")
    assert HOSTILE_NAME in [view["name"] for view in orjson.loads(out)]


def test_errors_quote_what_they_were_given_literally(env: dict[str, str]) -> None:
    code, out = tokenctl(env, "show", "01\x1b[2Jnope\u202e")
    assert code == 1
    assert out.strip() == "error: no token has id 01\\x1b[2Jnope\\u202e"
    code, out = tokenctl(env, "show", "01\x1b[2Jnope\u202e", "--json")
    assert orjson.loads(out)["error"] == "no token has id 01\x1b[2Jnope\u202e"


def test_show_says_never_used_once(env: dict[str, str]) -> None:
    token_id = generate(env, "cli-unused", "--scope", "entities:read")
    code, out = tokenctl(env, "show", token_id)
    assert code == 0, out
    assert re.search(r"^ *last used +never *$", out, re.MULTILINE), out
    assert "(never)" not in out


@dataclass
class Shown:
    """One Rich table as printed: its column headers and each row's cells."""

    headers: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)


def _cells(line: str, bar: str) -> list[str]:
    return [cell.strip() for cell in line.strip()[1:-1].split(bar)]


def tables(out: str) -> list[Shown]:
    """Every table in ``out``; a cell wrapped over several lines is joined with spaces."""
    found: list[Shown] = []
    header: list[list[str]] = []
    body: list[list[list[str]]] = []
    for line in out.splitlines():
        if line.startswith("┃"):
            header.append(_cells(line, "┃"))
        elif line.startswith("│"):
            cells = _cells(line, "│")
            if cells[header[0].index("status")]:  # on a row's first line only: never wraps
                body.append([[] for _ in cells])
            for parts, cell in zip(body[-1], cells, strict=True):
                parts += [cell] if cell else []
        elif line.startswith("└"):
            headers = [" ".join(filter(None, column)) for column in zip(*header, strict=True)]
            rows = [
                dict(zip(headers, (" ".join(parts) for parts in row), strict=True)) for row in body
            ]
            found.append(Shown(headers, rows))
            header, body = [], []
    return found


NARROW = ["name", "status", "scopes", "last used", "expires"]
EVERY = [
    "name",
    "id",
    "status",
    "scopes",
    "last used",
    "expires",
    "created by",
    "created",
    "hint",
    "allowed from",
]


def assert_complete(out: str, width: int) -> list[Shown]:
    """Every line fits ``width`` and every cell of every table shows its whole value."""
    assert all(len(line) <= width for line in out.splitlines()), out
    assert "…" not in out
    shown = tables(out)
    assert shown, out
    for table in shown:
        for row in table.rows:
            assert all(row.values()), row
    return shown


def test_list_at_80_columns_shows_the_columns_that_matter_whole(env: dict[str, str]) -> None:
    token_id = generate(
        env,
        "cli-narrow",
        "--scope",
        "entities:read",
        "--scope",
        "reports:write",
        "--expires-in",
        "90d",
        "--description",
        "a description long enough to need a wide terminal of its own, were it shown",
    )
    code, out = tokenctl({**env, "COLUMNS": "80"}, "list")
    assert code == 0, out
    (table,) = assert_complete(out, 80)
    assert table.headers == NARROW
    mine = next(row for row in table.rows if row["name"] == "cli-narrow")
    assert mine["status"] == "active"
    assert mine["scopes"] == "entities:read reports:write"
    assert mine["last used"] == "never"
    assert mine["expires"] == "in 89 days"
    assert token_id not in out
    assert "Hidden at this width: id, created by, created, hint, allowed from. Add --wide" in out


def test_list_at_160_columns_shows_every_column(env: dict[str, str]) -> None:
    token_id = generate(env, "cli-wide", "--scope", "entities:read")
    code, out = tokenctl({**env, "COLUMNS": "160"}, "list")
    assert code == 0, out
    (table,) = assert_complete(out, 160)
    assert table.headers == EVERY
    mine = next(row for row in table.rows if row["name"] == "cli-wide")
    assert mine["id"] == token_id
    assert mine["created by"] == env["TOKENS_ACTOR"]
    assert "Hidden at this width" not in out
    code, out = tokenctl({**env, "COLUMNS": "80"}, "list", "--wide")
    assert code == 0, out
    assert tables(out)[0].headers == EVERY


def test_stale_at_80_columns_is_readable(env: dict[str, str]) -> None:
    generate(env, "cli-stale-soon", "--scope", "entities:read", "--expires-in", "7d")
    code, out = tokenctl({**env, "COLUMNS": "80"}, "stale")
    assert code == 0, out
    shown = assert_complete(out, 80)
    assert all(table.headers == NARROW for table in shown)
    names = {row["name"] for table in shown for row in table.rows}
    assert "cli-stale-soon" in names
    assert "Add --wide" in out
    code, out = tokenctl({**env, "COLUMNS": "160"}, "stale")
    assert all(table.headers == EVERY for table in assert_complete(out, 160))
