"""A Lua script called by its SHA, and loaded again whenever Redis has forgotten it."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

__all__ = ["LuaScript"]


class LuaScript:
    """One script; Redis loses its script cache on a restart or a SCRIPT FLUSH."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha: str | None = None

    @classmethod
    def packaged(cls, package: str, *names: str) -> LuaScript:
        """The files ``lua/<name>.lua`` of ``package``, joined in order."""
        folder = resources.files(package).joinpath("lua")
        return cls("\n".join(folder.joinpath(f"{n}.lua").read_text("utf-8") for n in names))

    async def load(self, redis: Redis) -> str:
        """Put the script in Redis' cache; returns its SHA."""
        self.sha = await redis.script_load(self.source)
        return self.sha

    async def __call__(
        self,
        redis: Redis,
        keys: Sequence[str] = (),
        args: Sequence[str | int] = (),
        *,
        read_only: bool = False,
    ) -> Any:
        """EVALSHA (EVALSHA_RO when ``read_only``), loading the script first if need be."""
        call = redis.evalsha_ro if read_only else redis.evalsha
        sha = self.sha or await self.load(redis)
        try:
            return await call(sha, len(keys), *keys, *args)
        except NoScriptError:
            return await call(await self.load(redis), len(keys), *keys, *args)
