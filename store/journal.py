"""What a running task writes: attempts, its reply's ts, its step journal, and its end. Every write is fenced.

Fenced means each write checks, atomically with the write, that the worker still holds the thread's lease
(see store/lua.py). A worker that stalled past its lease gets LeaseLost instead of overwriting the new owner.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from store import decode, keys, lua
from store.errors import CorruptRecord
from store.models import Task, TaskStatus, Turn, Usage
from store.tasks import ThreadLease, cancelled_replies

NO_USAGE = Usage()


@dataclass(frozen=True)
class Fold:
    """Older turns leaving the window: how many (from the oldest), and the summary that now covers them."""

    evict: int
    summary: str


@dataclass(frozen=True)
class ResetCleanup:
    """The messages a reset's cancelled tasks left: by ts, and by task id for those whose ts was not recorded."""

    reply_ts: list[str]
    unrecorded_task_ids: list[str]


class TaskJournal:
    """Writes of a task in progress, each refused once its worker's lease has passed to another."""

    def __init__(self, redis: Redis, *, agent_ttl: int = keys.AGENT_TTL, task_ttl: int = keys.TASK_TTL) -> None:
        self._redis = redis
        self._agent_ttl = agent_ttl
        self._task_ttl = task_ttl
        self._start = redis.register_script(lua.START)
        self._set_fields = redis.register_script(lua.SET_FIELDS)
        self._record_step = redis.register_script(lua.RECORD_STEP)
        self._holds = redis.register_script(lua.HOLDS)
        self._finish = redis.register_script(lua.FINISH)

    async def start(self, lease: ThreadLease, task: Task) -> int:
        """Count an attempt at the task; returns the attempt number (1 for the first)."""
        keys_ = [keys.QUEUE, keys.task(task.thread.team_id, task.task_id), keys.state(task.thread)]
        args = [task.kind.value, repr(time.time()), self._agent_ttl]
        return await self._fenced(self._start, lease, keys_, args)

    async def set_reply_ts(self, lease: ThreadLease, task: Task, reply_ts: str, part: int = 0) -> None:
        """Remember the Slack message that carries (part `part` of) the task's answer."""
        keys_ = [keys.QUEUE, keys.task(task.thread.team_id, task.task_id)]
        field = "reply_ts" if part == 0 else f"reply_ts:{part}"
        await self._fenced(self._set_fields, lease, keys_, [field, reply_ts])

    async def reply_parts(self, task: Task) -> dict[int, str]:
        """The messages already posted for the further parts (1, 2...) of a long answer, by part."""
        raw = decode.fields(await self._redis.hgetall(keys.task(task.thread.team_id, task.task_id)))
        return {int(name.split(":")[1]): ts for name, ts in raw.items() if name.startswith("reply_ts:")}

    async def check_lease(self, lease: ThreadLease) -> None:
        """Raise LeaseLost unless the lease is still held (just before something irrevocable, like a Slack post)."""
        await self._fenced(self._holds, lease, [keys.QUEUE], [])

    async def cancelled(self, task: Task) -> bool:
        """Whether a reset cancelled the task."""
        status = await self._redis.hget(keys.task(task.thread.team_id, task.task_id), "status")
        return status is not None and decode.text(status) == TaskStatus.CANCELLED.value

    async def reset_cleanup(self, task: Task) -> ResetCleanup | None:
        """For a reset task: what the tasks it cancelled left in the thread (None: recorded by an older release)."""
        replies, unrecorded = await self._redis.hmget(
            keys.task(task.thread.team_id, task.task_id), ["cancelled_replies", "cancelled_unrecorded"]
        )
        if replies is None:
            return None
        return ResetCleanup(
            reply_ts=cancelled_replies(decode.text(replies)),
            unrecorded_task_ids=cancelled_replies(None if unrecorded is None else decode.text(unrecorded)),
        )

    async def record_step(self, lease: ThreadLease, task: Task, step: dict[str, Any]) -> None:
        """Journal a completed model or tool call before the next one starts."""
        keys_ = [keys.QUEUE, keys.steps(task.thread.team_id, task.task_id)]
        await self._fenced(self._record_step, lease, keys_, [json.dumps(step, separators=(",", ":")), self._task_ttl])

    async def steps(self, task: Task) -> list[dict[str, Any]]:
        """The task's journal, oldest step first."""
        raw = await self._redis.lrange(keys.steps(task.thread.team_id, task.task_id), 0, -1)
        try:
            return [json.loads(decode.text(step)) for step in raw]
        except json.JSONDecodeError as exc:
            raise CorruptRecord(f"malformed journal of task {task.task_id}") from exc

    async def finish(
        self,
        lease: ThreadLease,
        task: Task,
        status: TaskStatus,
        *,
        turns: Sequence[Turn] = (),
        usage: Usage = NO_USAGE,
        error: str = "",
        clear_agent: bool = False,
        counts_as_task: bool = True,
        fold: Fold | None = None,
    ) -> bool:
        """Mark the task finished and write its turns, usage and fold atomically; False if it was finished before."""
        ref = task.thread
        arguments: dict[str, Any] = {
            "task_id": task.task_id,
            "status": status.value,
            "now": time.time(),
            "ttl": self._agent_ttl,
            "error": error[:500],
            "usage": usage.counters(),
            "clear_agent": clear_agent,
            "counts_as_task": counts_as_task,
            "thread_ts": ref.thread_ts,
            "evict": fold.evict if fold else 0,
        }
        if fold is not None:
            arguments["summary"] = fold.summary
        keys_ = [
            keys.QUEUE,
            keys.task(ref.team_id, task.task_id),
            keys.inbox(ref),
            keys.state(ref),
            keys.turns(ref),
            keys.channel_threads(ref.team_id, ref.channel_id),
            keys.channel_usage(ref.team_id, ref.channel_id),
            keys.steps(ref.team_id, task.task_id),
        ]
        result = await self._fenced(
            self._finish, lease, keys_, [json.dumps(arguments), *(turn.to_json() for turn in turns)]
        )
        return bool(result)

    @staticmethod
    async def _fenced(script: Any, lease: ThreadLease, keys_: list[str], args: list[Any]) -> int:
        # The fence also checks the thread's queued flag, which every fenced script takes as its last key.
        result = await script(keys=[*keys_, keys.queued(lease.thread)], args=[lease.entry_id, lease.consumer, *args])
        return lua.unless_fenced(result, lease.entry_id)
