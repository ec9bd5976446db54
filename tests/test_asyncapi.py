"""The AsyncAPI document: generated from the running apps, committed, and readable by others."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from specs.asyncapi import DOCUMENT, render

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / "tools" / "asyncapi"


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / DOCUMENT).read_text(encoding="utf-8"))
    return loaded


def test_committed_document_is_what_the_code_generates() -> None:
    committed = (ROOT / DOCUMENT).read_text(encoding="utf-8")
    assert render() == committed, "docs/asyncapi.json is stale: run `make asyncapi`"


def test_document_describes_every_channel_of_the_contract() -> None:
    channels = _document()["channels"].values()
    addresses = {channel["address"] for channel in channels}
    assert addresses == {
        "tokens:commands",
        "tokens:commands:console",
        "tokens:events",
        "tokens:usage",
        "tokens:dead-letter",
        "{reply_to}",
    }


def _name(reference: dict[str, str]) -> str:
    return reference["$ref"].rsplit("/", 1)[-1]


def _payload_refs(document: dict[str, Any], address: str) -> set[str]:
    """The model names a channel's messages can carry, following the document's refs."""
    schemas = document["components"]["schemas"]
    messages = document["components"]["messages"]
    names: set[str] = set()
    for channel in document["channels"].values():
        if channel["address"] != address:
            continue
        for message in channel["messages"].values():
            payload = messages[_name(message)]["payload"]
            schema = schemas[_name(payload)]
            if "oneOf" in schema:
                names |= {_name(option) for option in schema["oneOf"]}
            elif "$ref" in schema:
                names.add(_name(schema))
            else:
                names.add(_name(payload))
    return names


@pytest.mark.parametrize(
    ("address", "models"),
    [
        ("tokens:commands", {"GenerateToken", "RevokeToken", "RotateToken", "UpdateToken"}),
        (
            "tokens:commands:console",
            {"GenerateToken", "RevokeToken", "RotateToken", "UpdateToken"},
        ),
        (
            "tokens:events",
            {
                "TokenCreated",
                "TokenRevoked",
                "TokenRotated",
                "TokenUpdated",
                "TokenExpired",
                "CommandRejected",
            },
        ),
        ("tokens:usage", {"TokenUsed"}),
        ("tokens:dead-letter", {"DeadLetter"}),
        ("{reply_to}", {"CommandReply"}),
    ],
)
def test_each_channel_carries_the_contract_models(address: str, models: set[str]) -> None:
    assert _payload_refs(_document(), address) == models


def test_payload_schemas_are_the_contract_models_own() -> None:
    from contracts.schemas import json_schemas

    schemas = _document()["components"]["schemas"]
    for name in ("GenerateToken", "TokenUsed", "DeadLetter"):
        expected = json_schemas()[name]
        assert schemas[name]["properties"].keys() == expected["properties"].keys()
        assert schemas[name].get("required") == expected.get("required")


def test_official_asyncapi_parser_accepts_the_document() -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed to run @asyncapi/parser (see .ci/run)"
    assert (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "run `make test`, which installs @asyncapi/parser into tools/asyncapi"
    )
    result = subprocess.run(
        [node, "validate.mjs", str(ROOT / DOCUMENT)],
        cwd=VALIDATOR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid AsyncAPI 3.0.0, 7 channels" in result.stdout
