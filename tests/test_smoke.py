from token_service.client import TokenClient


async def test_generate_then_revoke(client: TokenClient) -> None:
    reply = await client.generate("ci-deploy", ["entities:read"])
    print(reply)
    assert reply.ok and reply.secret and reply.token
    again = await client.revoke(reply.token.id)
    print(again)
    assert again.ok
