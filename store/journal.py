"""What a running task writes: attempts, its reply's ts, its step journal, and its end. Every write is fenced.

Fenced means each write checks, atomically with the write, that the worker still holds the thread's lease
(see store/lua.py). A worker that stalled past its lease gets LeaseLost instead of overwriting the new owner.
Finishing a task also gives its thread back when nothing else waits (the lease is then marked released).
A task a person asked to stop (store/stops.py) is refused its start and its answer's next step: TaskStopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from store import decode, keys, lua
from store.connection import RedisClient
from store.errors import CorruptRecord, TaskStopped
from store.models import Task, TaskKind, TaskStatus, Turn, Usage
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

    def __init__(
        self,
        redis: RedisClient,
        space: keys.KeySpace | None = None,
        *,
        agent_ttl: int = keys.AGENT_TTL,
        task_ttl: int = keys.TASK_TTL,
    ) -> None:
        self._redis = redis
        self._keys = space or keys.KeySpace()  # the default shard count unless told
        self._agent_ttl = agent_ttl
        self._task_ttl = task_ttl
        self._start = redis.register_script(lua.START)
        self._set_fields = redis.register_script(lua.SET_FIELDS)
        self._record_step = redis.register_script(lua.RECORD_STEP)
        self._holds = redis.register_script(lua.HOLDS)
        self._finish = redis.register_script(lua.FINISH)
        # How many steps each task in progress in this process has journaled: the number of its next one.
        self._step_counts: dict[tuple[str, str], int] = {}
        self._released: set[tuple[int, str]] = set()

    async def start(self, lease: ThreadLease, task: Task) -> int:
        """Count an attempt at the task; returns the attempt number (1 for the first). TaskStopped if a person asked
        to stop it (it ran before, and its worker died or failed): it is not started again, but finished as stopped."""
        attempt = task.attempts + 1
        keys_ = self._fenced_keys(lease, self._keys.task(task.thread, task.task_id))
        args = ["1" if lease.taken_over else "0", attempt]
        result = await self._fenced(self._start, lease, keys_, args)
        if result == lua.STOPPED:
            raise await self._stopped(task)
        return result

    async def set_reply_ts(
        self, lease: ThreadLease, task: Task, reply_ts: str, part: int = 0, *, streamed: bool = False
    ) -> None:
        """Remember the Slack message that carries (part `part` of) the task's answer, and whether Slack streams it."""
        fields = ["reply_ts" if part == 0 else f"reply_ts:{part}", reply_ts]
        if part == 0:
            fields += ["reply_streamed", "1" if streamed else "0"]
        keys_ = self._fenced_keys(lease, self._keys.task(task.thread, task.task_id))
        await self._fenced(self._set_fields, lease, keys_, fields)

    async def reply_parts(self, task: Task) -> dict[int, str]:
        """The messages already posted for the further parts (1, 2...) of a long answer, by part."""
        raw = decode.fields(await self._redis.hgetall(self._keys.task(task.thread, task.task_id)))
        return {int(name.split(":")[1]): ts for name, ts in raw.items() if name.startswith("reply_ts:")}

    async def check_lease(self, lease: ThreadLease) -> None:
        """Raise LeaseLost unless the lease is still held (just before something irrevocable, like a Slack post).

        One GET when the flag names the lease as expected; the fenced script otherwise (it may have to restore a
        lost flag, or finds the thread taken over)."""
        flag = await self._redis.get(self._keys.queued(lease.thread))
        if flag is not None and decode.text(flag) in (lease.entry_id, f"{lease.entry_id} {lease.consumer}"):
            return
        await self._fenced(self._holds, lease, self._fenced_keys(lease), [])

    async def cancelled(self, task: Task) -> bool:
        """Whether a reset cancelled the task."""
        status = await self._redis.hget(self._keys.task(task.thread, task.task_id), "status")
        return status is not None and decode.text(status) == TaskStatus.CANCELLED.value

    async def reset_cleanup(self, task: Task) -> ResetCleanup | None:
        """For a reset task: what the tasks it cancelled left in the thread (None: recorded by an older release)."""
        replies, unrecorded = await self._redis.hmget(
            self._keys.task(task.thread, task.task_id), ["cancelled_replies", "cancelled_unrecorded"]
        )
        if replies is None:
            return None
        return ResetCleanup(
            reply_ts=cancelled_replies(decode.text(replies)),
            unrecorded_task_ids=cancelled_replies(None if unrecorded is None else decode.text(unrecorded)),
        )

    async def record_step(
        self, lease: ThreadLease, task: Task, step: dict[str, Any], *, stoppable: bool = False
    ) -> None:
        """Journal a completed model or tool call before the next one starts (call steps() first).

        A `stoppable` step (an answer's model and tool calls) of a task a person asked to stop raises TaskStopped and
        is not journaled. The other steps (summaries, which keep the agent's memory) are written whatever happens.
        The same step already journaled at its number (a command sent twice) is no error; another step is."""
        cursor = (task.thread.encode(), task.task_id)
        number = self._step_counts.get(cursor)
        if number is None:  # steps() was not read in this process: count what is there
            number = len(await self.steps(task, attempt=2))
        keys_ = self._fenced_keys(lease, self._keys.task(task.thread, task.task_id))
        step_json = json.dumps(step, separators=(",", ":"))
        written = await self._fenced(self._record_step, lease, keys_, [number, step_json, "1" if stoppable else "0"])
        if written == lua.STOPPED:
            raise await self._stopped(task)
        if not written:
            raise CorruptRecord(f"task {task.task_id}: step {number} was journaled already")
        self._step_counts[cursor] = number + 1

    async def steps(self, task: Task, *, attempt: int) -> list[dict[str, Any]]:
        """The task's journal, oldest step first. A first attempt has none: its attempt was counted before any."""
        cursor = (task.thread.encode(), task.task_id)
        if attempt <= 1:
            self._step_counts[cursor] = 0
            return []
        raw = decode.fields(await self._redis.hgetall(self._keys.task(task.thread, task.task_id)))
        numbered = decode.numbered(raw, keys.STEP_FIELD)
        if [number for number, _ in numbered] != list(range(len(numbered))):
            raise CorruptRecord(f"the journal of task {task.task_id} has gaps")
        try:
            steps = [json.loads(value) for _, value in numbered]
        except json.JSONDecodeError as exc:
            raise CorruptRecord(f"malformed journal of task {task.task_id}") from exc
        self._step_counts[cursor] = len(steps)
        return steps

    def released(self, lease: ThreadLease) -> bool:
        """Whether finishing a task just gave the lease's thread back (asked once: the answer is forgotten)."""
        if lease.key in self._released:
            self._released.discard(lease.key)
            return True
        return False

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
        """Mark the task finished and write its turns, usage and fold atomically; False if it was finished before.

        If no other task waits in the thread, the thread is given back in the same step (see released()).
        """
        ref = task.thread
        cursor = (ref.encode(), task.task_id)
        now = time.time()
        arguments: dict[str, Any] = {
            "task_id": task.task_id,
            "status": status.value,
            "now": repr(now),
            "day": str(int(now // keys.DAY)),
            "ttl": self._agent_ttl,
            "error": error[:500],
            "usage": usage.counters(),
            "clear_agent": clear_agent,
            "counts_as_task": counts_as_task,
            "answer": task.kind is TaskKind.ANSWER,
            "thread_ts": ref.thread_ts,
            "evict": fold.evict if fold else 0,
            # -1: not read in this process, FINISH looks. A stopped task looks too: it may have been cancelled while
            # a step was on its way, written but not counted here.
            "steps": -1 if status is TaskStatus.STOPPED else self._step_counts.get(cursor, -1),
        }
        if fold is not None:
            arguments["summary"] = fold.summary
        keys_ = self._fenced_keys(
            lease,
            self._keys.task(ref, task.task_id),
            self._keys.inbox(ref),
            self._keys.state(ref),
            self._keys.thread_channel_threads(ref),
            self._keys.thread_channel_usage(ref),
        )
        result = await self._fenced(
            self._finish, lease, keys_, [json.dumps(arguments), *(turn.to_json() for turn in turns)]
        )
        self._step_counts.pop(cursor, None)
        if result & 2:
            self._released.add(lease.key)
        return bool(result & 1)

    async def _stopped(self, task: Task) -> TaskStopped:
        """The error for a task the journal refused because a person asked to stop it (who asked: its stop_by)."""
        by = await self._redis.hget(self._keys.task(task.thread, task.task_id), "stop_by")
        return TaskStopped(decode.text(by) if by is not None else "")

    def _fenced_keys(self, lease: ThreadLease, *more: str) -> list[str]:
        """The keys every fenced script starts with (the thread's flag and its shard's stream), then `more`."""
        return [self._keys.queued(lease.thread), self._keys.queue(lease.shard), *more]

    @staticmethod
    async def _fenced(script: Any, lease: ThreadLease, keys_: list[str], args: list[Any]) -> int:
        result = await script(keys=keys_, args=[lease.entry_id, lease.consumer, *args])
        return lua.unless_fenced(result, lease.entry_id)
