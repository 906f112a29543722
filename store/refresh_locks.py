"""A lock per workspace around refreshing its bot token.

Slack's refresh token is single use: of two processes refreshing with it at once, one gets a new token and the
other an error (and Slack may then revoke the lot). SET NX PX lets one of them refresh; the others wait for the
new token in the store. The lock expires on its own, so one that died holding it blocks the workspace briefly.
"""

from __future__ import annotations

import secrets

from store import keys
from store.connection import RedisClient

# Deletes the lock only if it is still the caller's: after its PX ran out, another process may hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RefreshLocks:
    """Per-workspace locks for refreshing a bot token."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, owner_id: str, ttl_ms: int) -> str | None:
        """A token naming this hold of the lock, or None if another process holds it."""
        holder = secrets.token_hex(16)
        taken = await self._redis.set(keys.token_refresh_lock(owner_id), holder, nx=True, px=ttl_ms)
        return holder if taken else None

    async def release(self, owner_id: str, holder: str) -> None:
        """Let go of the lock if this hold still has it."""
        await self._release(keys=[keys.token_refresh_lock(owner_id)], args=[holder])

    async def held(self, owner_id: str) -> bool:
        """Whether some process holds the workspace's lock."""
        return bool(await self._redis.exists(keys.token_refresh_lock(owner_id)))
