"""Reading and clearing a thread's agent: its state and its turns."""

from __future__ import annotations

from redis.asyncio import Redis

from store import decode, keys
from store.models import AgentState, ThreadRef, Turn, Usage


class ThreadStore:
    """A thread's agent as stored in Redis; tasks write it (see TaskQueue.finish), this class reads it."""

    def __init__(self, redis: Redis, *, user_name_ttl: int = keys.USER_NAME_TTL) -> None:
        self._redis = redis
        self._user_name_ttl = user_name_ttl

    async def state(self, ref: ThreadRef) -> AgentState | None:
        """The agent's state, or None if the thread has no agent."""
        raw = await self._redis.hgetall(keys.state(ref))
        return AgentState.from_fields(decode.fields(raw)) if raw else None

    async def has_agent(self, ref: ThreadRef) -> bool:
        """Whether the thread has an agent (it was mentioned since the last reset or expiry)."""
        return bool(await self._redis.exists(keys.state(ref)))

    async def turns(self, ref: ThreadRef) -> list[Turn]:
        """Every remembered turn, oldest first."""
        return [Turn.from_json(decode.text(raw)) for raw in await self._redis.lrange(keys.turns(ref), 0, -1)]

    async def channel_agents(
        self, team_id: str, channel_id: str, limit: int = 10
    ) -> list[tuple[ThreadRef, AgentState]]:
        """The channel's most recently active agents, newest first."""
        recent = await self._redis.zrevrange(keys.channel_threads(team_id, channel_id), 0, limit - 1)
        agents: list[tuple[ThreadRef, AgentState]] = []
        for member in recent:
            ref = ThreadRef(team_id, channel_id, decode.text(member))  # no WITHSCORES: members only
            state = await self.state(ref)
            if state is not None:  # its state may have expired before the index entry was trimmed
                agents.append((ref, state))
        return agents

    async def channel_usage(self, team_id: str, channel_id: str) -> Usage:
        """Usage of every agent of the channel, added up as tasks finished."""
        return Usage.from_fields(decode.fields(await self._redis.hgetall(keys.channel_usage(team_id, channel_id))))

    async def cached_user_name(self, team_id: str, user_id: str) -> str | None:
        """A display name looked up earlier, if it has not expired."""
        name = await self._redis.get(keys.user_name(team_id, user_id))
        return None if name is None else decode.text(name)

    async def remember_user_name(self, team_id: str, user_id: str, name: str) -> None:
        """Cache a display name so later turns need no users.info call."""
        await self._redis.set(keys.user_name(team_id, user_id), name, ex=self._user_name_ttl)
