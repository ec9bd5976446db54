"""Finding 4, second half: a flood of junk from one writer delayed an administrator's
revocation by 21 s, because every writer shared one stream and one queue."""

from __future__ import annotations

import orjson

from tests.adversarial.conftest import INSPECTOR, Deployment
from tests.conftest import ADMIN
from token_service.app import Service
from token_service.client import TokenClient

FLOOD = 20_000


async def test_one_publishers_flood_does_not_hold_back_anothers_revocation(
    deployment: Deployment, guarded_service: Service
) -> None:
    keys = deployment.keys
    console = await deployment.login("publisher-console")
    billing = await deployment.login("publisher-billing")
    inspector = await deployment.login(INSPECTOR)
    async with TokenClient(
        console, actor=ADMIN, key_prefix=keys.prefix, publisher="console", timeout=10
    ) as admin:
        created = await admin.generate("to-revoke-under-flood", ["entities:read"])
        assert created.token is not None
        junk = orjson.dumps(
            {"type": "RevokeToken", "command_id": "j", "actor": "billing", "token_id": "x"}
        )
        flood_stream = keys.publisher_commands("billing")
        async with billing.pipeline(transaction=False) as pipe:
            for _ in range(FLOOD):
                pipe.xadd(flood_stream, {"data": junk})
            await pipe.execute()
        revoked = await admin.revoke(created.token.id, reason="compromised")
        (group,) = await inspector.xinfo_groups(flood_stream)
    assert revoked.ok
    # Answered while most of the flood was still waiting to be read or settled.
    assert int(group["lag"] or 0) + int(group["pending"]) > FLOOD // 4
