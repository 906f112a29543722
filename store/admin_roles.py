"""Slack's word on who is a workspace admin or owner, cached for ADMIN_ROLE_TTL (bot/tasks/admins.py asks)."""

from __future__ import annotations

from store import decode, keys
from store.connection import RedisClient


class AdminRoleCache:
    """Remembers for a few minutes whether users.info said a person is a workspace admin or owner."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def get(self, team_id: str, user_id: str) -> bool | None:
        """The remembered answer, or None when there is none (never asked, or expired)."""
        cached = await self._redis.get(keys.admin_role(team_id, user_id))
        return None if cached is None else decode.text(cached) == "1"

    async def put(self, team_id: str, user_id: str, is_admin: bool) -> None:
        """Remember Slack's answer for ADMIN_ROLE_TTL."""
        await self._redis.set(keys.admin_role(team_id, user_id), "1" if is_admin else "0", ex=keys.ADMIN_ROLE_TTL)
