"""Reading a thread's agent (its state, turns and current task) and a channel's agents."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from store import decode, keys
from store.connection import RedisClient
from store.errors import CorruptRecord
from store.keys import KeySpace
from store.models import AgentState, Task, TaskKind, TaskStatus, ThreadRef, Turn, Usage

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
    """A thread's agent as stored in Redis; tasks write it (see TaskJournal.finish), this class reads it."""

    def __init__(
        self, redis: RedisClient, space: KeySpace | None = None, *, user_name_ttl: int = keys.USER_NAME_TTL
    ) -> None:
        self._redis = redis
        self._keys = space or keys.KeySpace()  # the default shard count unless told
        self._user_name_ttl = user_name_ttl

    async def agent(self, ref: ThreadRef) -> tuple[AgentState | None, list[Turn]]:
        """The agent's state and its window of turns, oldest first, in one read (status not derived: see state())."""
        fields = decode.fields(await self._redis.hgetall(self._keys.state(ref)))
        if not fields:
            return None, []
        return AgentState.from_fields(fields), window(fields)

    async def state(self, ref: ThreadRef) -> AgentState | None:
        """The agent's state with its status (queued, working or idle), or None if the thread has no agent.

        A thread whose first mention waits in its inbox has an agent already: a new one, queued.
        """
        state, _ = await self.agent(ref)
        current = await self.current_task(ref)
        if current is None:
            return state
        status = "working" if current.task.status is TaskStatus.RUNNING else "queued"
        if state is None:
            if current.task.kind is not TaskKind.ANSWER:
                return None
            created = current.task.created_at
            return AgentState(created, created, status, 0, 0, 0, Usage())
        return replace(state, status=status)

    async def has_agent(self, ref: ThreadRef) -> bool:
        """Whether the thread has an agent (it was mentioned since the last reset or expiry)."""
        return bool(await self._redis.exists(self._keys.state(ref)))

    async def turns(self, ref: ThreadRef) -> list[Turn]:
        """Every remembered turn, oldest first."""
        _, turns = await self.agent(ref)
        return turns

    async def channel_agents(
        self, team_id: str, channel_id: str, limit: int = 10
    ) -> list[tuple[ThreadRef, AgentState]]:
        """The channel's most recently active agents, newest first."""
        agents: list[tuple[ThreadRef, AgentState]] = []
        for thread_ts in await self.channel_threads(team_id, channel_id):
            ref = ThreadRef(team_id, channel_id, thread_ts)
            state = await self.state(ref)
            if state is not None:
                agents.append((ref, state))
            if len(agents) == limit:
                break
        return agents

    async def channel_threads(self, team_id: str, channel_id: str) -> list[str]:
        """The thread ts of every agent listed for the channel (at most MAX_CHANNEL_AGENTS), newest first.

        The index is kept per shard: this reads every shard's (one round trip per node) and merges them. Entries
        whose thread has neither an agent nor queued work (expired, or reset while being listed) are removed.
        """
        pipe = self._redis.pipeline(transaction=False)
        for shard in range(self._keys.shards):
            index = self._keys.channel_threads(team_id, channel_id, shard)
            pipe.zrevrange(index, 0, MAX_CHANNEL_AGENTS - 1, withscores=True)
        listed: list[tuple[float, str]] = []
        for members in await pipe.execute():
            listed += [(float(score), decode.text(member)) for member, score in members]
        listed.sort(reverse=True)
        newest = [ts for _, ts in listed[:MAX_CHANNEL_AGENTS]]
        refs = [ThreadRef(team_id, channel_id, ts) for ts in newest]
        pipe = self._redis.pipeline(transaction=False)
        for ref in refs:
            pipe.exists(self._keys.state(ref), self._keys.inbox(ref))
        alive = await pipe.execute() if refs else []
        gone = [ref for ref, count in zip(refs, alive, strict=True) if not count]
        if gone:
            pipe = self._redis.pipeline(transaction=False)
            for ref in gone:
                pipe.zrem(self._keys.thread_channel_threads(ref), ref.thread_ts)
            await pipe.execute()
        return [ref.thread_ts for ref, count in zip(refs, alive, strict=True) if count]

    async def channel_counts(self, team_id: str, channel_id: str) -> ChannelCounts:
        """How many of the channel's agents are working, queued or failing."""
        refs = [ThreadRef(team_id, channel_id, ts) for ts in await self.channel_threads(team_id, channel_id)]
        pipe = self._redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hget(self._keys.state(ref), "last_error")
            pipe.lindex(self._keys.inbox(ref), 0)
        rows = await pipe.execute() if refs else []
        errors, heads = rows[0::2], rows[1::2]
        pipe = self._redis.pipeline(transaction=False)
        busy = [(ref, decode.text(head)) for ref, head in zip(refs, heads, strict=True) if head is not None]
        for ref, task_id in busy:
            pipe.hget(self._keys.task(ref, task_id), "status")
        statuses = await pipe.execute() if busy else []
        working = sum(1 for status in statuses if status is not None and decode.text(status) == "running")
        return ChannelCounts(
            agents=len(refs),
            working=working,
            queued=len(busy) - working,
            failing=sum(1 for error in errors if error),
        )

    async def current_task(self, ref: ThreadRef) -> CurrentTask | None:
        """The thread's oldest unfinished task (the running one, if any) and its journal's progress."""
        task_id = await self._redis.lindex(self._keys.inbox(ref), 0)
        if task_id is None:
            return None
        fields = decode.fields(await self._redis.hgetall(self._keys.task(ref, decode.text(task_id))))
        if not fields:
            return None
        steps = decode.numbered(fields, keys.STEP_FIELD)
        return CurrentTask(Task.from_fields(fields), len(steps), _step_name(steps[-1][1]) if steps else None)

    async def clear_channel_usage(self, team_id: str, channel_id: str) -> None:
        """Forget the channel's usage totals (a reset of every agent of the channel), in every shard."""
        pipe = self._redis.pipeline(transaction=False)
        for shard in range(self._keys.shards):
            pipe.delete(self._keys.channel_usage(team_id, channel_id, shard))
        await pipe.execute()

    async def channel_usage(self, team_id: str, channel_id: str) -> Usage:
        """Usage of every agent of the channel, added up as tasks finished (the shards' totals summed)."""
        pipe = self._redis.pipeline(transaction=False)
        for shard in range(self._keys.shards):
            pipe.hgetall(self._keys.channel_usage(team_id, channel_id, shard))
        total = Usage()
        for raw in await pipe.execute():
            total += Usage.from_fields(decode.fields(raw))
        return total

    async def cached_user_name(self, team_id: str, user_id: str) -> str | None:
        """A display name looked up earlier, if it has not expired."""
        name = await self._redis.get(keys.user_name(team_id, user_id))
        return None if name is None else decode.text(name)

    async def remember_user_name(self, team_id: str, user_id: str, name: str) -> None:
        """Cache a display name so later turns need no users.info call."""
        await self._redis.set(keys.user_name(team_id, user_id), name, ex=self._user_name_ttl)


def window(fields: dict[str, str]) -> list[Turn]:
    """The turns kept in a state hash (fields turn:N), oldest first."""
    return [Turn.from_json(value) for _, value in decode.numbered(fields, keys.TURN_FIELD)]


def _step_name(raw: object) -> str | None:
    if raw is None:
        return None
    try:
        step = json.loads(decode.text(raw))
    except json.JSONDecodeError as exc:
        raise CorruptRecord("malformed journal step") from exc
    kind = str(step.get("kind", "?"))
    return f"tool:{step['name']}" if kind == "tool" and "name" in step else kind
