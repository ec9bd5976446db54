"""The notifier's parts without processes: signatures, bodies, settings."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import pytest
from pydantic import ValidationError

from workers.notify_settings import NotifySettings, Webhook
from workers.webhooks import body_for, sign, signature_valid, text_of

KEY = b"0123456789abcdef"


def test_a_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    header = sign(KEY, b'{"a":1}', at=1_700_000_000)
    expected = hmac.new(KEY, b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_a_receiver_refuses_a_changed_body_a_wrong_key_and_an_old_delivery() -> None:
    body = b'{"type":"TokenRevoked"}'
    header = sign(KEY, body)
    assert signature_valid(KEY, header, body)
    assert not signature_valid(KEY, header, body + b" ")
    assert not signature_valid(b"another-key-of-16", header, body)
    old = sign(KEY, body, at=int(time.time()) - 3600)
    assert not signature_valid(KEY, old, body)
    assert not signature_valid(KEY, header.split(",")[0], body)  # no v1 at all


def test_slack_gets_a_sentence_and_json_the_event_as_written() -> None:
    revoked = {"type": "TokenRevoked", "token_id": "01T", "actor": "alice", "reason": None}
    raw = orjson.dumps(revoked)
    slack = Webhook(name="ops", url="https://example.test/hook", format="slack")
    plain = Webhook(name="siem", url="https://example.test/events", format="json")
    assert orjson.loads(body_for(slack, revoked, raw))["text"].startswith(
        "Token 01T was revoked by alice ("
    )
    assert body_for(plain, revoked, raw) == raw
    loud = {**revoked, "reason": "<!channel> & <https://evil.test|click>"}
    text = orjson.loads(body_for(slack, loud, orjson.dumps(loud)))["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil.test|click&gt;" in text
    later = {"type": "TokenRotationDue", "token_id": "01T", "due_at": "2027-01-01"}
    assert text_of(later).startswith("TokenRotationDue: token 01T - 2027-01-01")


def _settings(**values: object) -> NotifySettings:
    return NotifySettings.model_validate(values)


def test_every_webhook_must_be_signed_with_a_real_secret() -> None:
    hook = {"name": "ops", "url": "https://example.test/hook"}
    with pytest.raises(ValidationError, match="NOTIFY_SECRET is required"):
        _settings(webhooks=[hook])
    with pytest.raises(ValidationError, match="at least 16"):
        _settings(webhooks=[hook], secret="short")
    with pytest.raises(ValidationError, match="name of its own"):
        _settings(webhooks=[hook, hook], secret="s" * 16)
    own = _settings(webhooks=[{**hook, "secret": "h" * 16}])
    assert own.secret_of(own.webhooks[0]) == b"h" * 16
    # compose's default: no webhooks and an empty secret, so the notifier just waits
    idle = _settings(webhooks=[], secret="")
    assert idle.secret is None
