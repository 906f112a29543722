"""Reading a thread's agent (its state, turns and current task) and a channel's agents."""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from store import decode, keys
from store.errors import CorruptRecord
from store.models import AgentState, Task, ThreadRef, Turn, Usage

# A channel overview reads at most this many agents (the most recently active ones).
MAX_CHANNEL_AGENTS = 1000


@dataclass(frozen=True)
class ChannelCounts:
    """How many of a channel's agents are in each state."""

    agents: int = 0
    working: int = 0
    queued: int = 0
    failing: int = 0  # their latest task failed


@dataclass(frozen=True)
class CurrentTask:
    """The task at the head of a thread's inbox, and how far its journal has come."""

    task: Task
    steps: int
    last_step: str | None  # "model" or "tool:NAME" or "summary"


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

    async def channel_threads(self, team_id: str, channel_id: str) -> list[str]:
        """The thread ts of every agent listed for the channel (at most MAX_CHANNEL_AGENTS), newest first."""
        members = await self._redis.zrevrange(keys.channel_threads(team_id, channel_id), 0, MAX_CHANNEL_AGENTS - 1)
        return [decode.text(member) for member in members]

    async def channel_counts(self, team_id: str, channel_id: str) -> ChannelCounts:
        """How many of the channel's agents are working, queued or failing, in one round trip after the index."""
        threads = await self.channel_threads(team_id, channel_id)
        pipe = self._redis.pipeline(transaction=False)
        for ts in threads:
            pipe.hmget(keys.state(ThreadRef(team_id, channel_id, ts)), ["status", "last_error"])
        rows = await pipe.execute() if threads else []
        live = [row for row in rows if row[0] is not None]  # a state may have expired before its index entry
        return ChannelCounts(
            agents=len(live),
            working=sum(1 for status, _ in live if status == "working"),
            queued=sum(1 for status, _ in live if status == "queued"),
            failing=sum(1 for _, error in live if error),
        )

    async def current_task(self, ref: ThreadRef) -> CurrentTask | None:
        """The thread's oldest unfinished task (the running one, if any) and its journal's progress."""
        task_id = await self._redis.lindex(keys.inbox(ref), 0)
        if task_id is None:
            return None
        task_id = decode.text(task_id)
        raw = await self._redis.hgetall(keys.task(ref.team_id, task_id))
        if not raw:
            return None
        steps_key = keys.steps(ref.team_id, task_id)
        steps, last = await self._redis.llen(steps_key), await self._redis.lindex(steps_key, -1)
        return CurrentTask(Task.from_fields(decode.fields(raw)), steps, _step_name(last))

    async def clear_channel_usage(self, team_id: str, channel_id: str) -> None:
        """Forget the channel's usage totals (a reset of every agent of the channel)."""
        await self._redis.delete(keys.channel_usage(team_id, channel_id))

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


def _step_name(raw: object) -> str | None:
    if raw is None:
        return None
    try:
        step = json.loads(decode.text(raw))
    except json.JSONDecodeError as exc:
        raise CorruptRecord("malformed journal step") from exc
    kind = str(step.get("kind", "?"))
    return f"tool:{step['name']}" if kind == "tool" and "name" in step else kind
