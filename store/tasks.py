"""The task queue: per-thread inboxes fed into one Redis stream read by a consumer group.

Each thread with unfinished work has exactly one entry in the stream (guarded by its `queued` flag); the
consumer that holds that entry owns the thread and works its inbox in order until it is empty. So turns of
one thread never interleave, threads run concurrently, and a consumer that dies leaves its entries in the
group's pending list, where its restarted self (same name) or another consumer (after the lease) finds them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from store import decode, keys
from store.errors import CorruptRecord
from store.models import Task, TaskStatus, ThreadRef, Turn, Usage

NO_USAGE = Usage()

# One round trip: dedupe on the task id (the Slack event_id), record the task, append it to the thread's
# inbox, and put the thread on the queue unless it is already there.
_SUBMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] == 'note' and redis.call('EXISTS', KEYS[5]) == 0 then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
if ARGV[3] == 'answer' then
  redis.call('HSETNX', KEYS[5], 'created_at', ARGV[6])
  redis.call('HSETNX', KEYS[5], 'status', 'queued')
  redis.call('EXPIRE', KEYS[5], ARGV[5])
end
if redis.call('SET', KEYS[3], '1', 'NX') then
  redis.call('XADD', KEYS[4], '*', 'thread', ARGV[1])
end
return 1
"""

# Count an attempt. An answer (re)creates its agent, which a reset earlier in the inbox may have cleared;
# other kinds only mark an existing agent busy, so no state hash is ever left without its TTL.
_START = """
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'running')
if ARGV[1] == 'answer' then
  redis.call('HSETNX', KEYS[2], 'created_at', ARGV[2])
  redis.call('HSET', KEYS[2], 'status', 'working')
  redis.call('EXPIRE', KEYS[2], ARGV[3])
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'status', 'working')
end
return attempts
"""

# Finishing a task and writing what it produced is one atomic step, so a crash leaves either both or neither,
# and finishing twice (a resumed task) writes nothing the second time.
_FINISH = """
local a = cjson.decode(ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
local function pop_inbox()
  if redis.call('LINDEX', KEYS[2], 0) == a.task_id then redis.call('LPOP', KEYS[2])
  else redis.call('LREM', KEYS[2], 1, a.task_id) end
end
if status == 'done' or status == 'failed' then pop_inbox() return 0 end
redis.call('HSET', KEYS[1], 'status', a.status, 'finished_at', a.now, 'error', a.error)
if a.clear_agent then
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('ZREM', KEYS[5], a.thread_ts)
else
  for i = 2, #ARGV do redis.call('RPUSH', KEYS[4], ARGV[i]) end
  redis.call('HSETNX', KEYS[3], 'created_at', a.now)
  redis.call('HSET', KEYS[3], 'updated_at', a.now, 'status', 'idle')
  redis.call('HINCRBY', KEYS[3], 'turns', #ARGV - 1)
  redis.call('HINCRBY', KEYS[3], 'input_tokens', a.input_tokens)
  redis.call('HINCRBY', KEYS[3], 'output_tokens', a.output_tokens)
  redis.call('HINCRBY', KEYS[3], 'model_calls', a.model_calls)
  if a.status == 'done' then
    if a.counts_as_task then redis.call('HINCRBY', KEYS[3], 'tasks_done', 1) end
  else
    redis.call('HINCRBY', KEYS[3], 'tasks_failed', 1)
    redis.call('HSET', KEYS[3], 'last_error', a.error)
  end
  redis.call('EXPIRE', KEYS[3], a.ttl)
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], a.ttl) end
  redis.call('ZADD', KEYS[5], a.now, a.thread_ts)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', a.now - a.ttl)
  redis.call('EXPIRE', KEYS[5], a.ttl)
end
pop_inbox()
return 1
"""

# The queue entry goes only when the inbox is empty, checked in the same step as a submit would check the
# `queued` flag, so a task submitted meanwhile is never stranded without an entry.
_RELEASE = """
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[3], ARGV[1])
return 1
"""

# Renew the lease on entries this consumer still owns; report the ones another consumer took over.
_HEARTBEAT = """
local lost = {}
for i = 1, #ARGV - 2 do
  local id = ARGV[i + 2]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if pending[1] ~= nil and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    table.insert(lost, id)
  end
end
return lost
"""


class SubmitResult(Enum):
    """What intake did with a task."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the same Slack event_id was recorded before
    NO_AGENT = "no_agent"  # a note for a thread that has no agent: nothing to remember it for


@dataclass(frozen=True)
class QueueEntry:
    """A stream entry held by this consumer: the right to work one thread's inbox."""

    entry_id: str
    thread: ThreadRef


class TaskQueue:
    """Records tasks and hands threads with work to consumers."""

    def __init__(self, redis: Redis, *, agent_ttl: int = keys.AGENT_TTL, task_ttl: int = keys.TASK_TTL) -> None:
        self._redis = redis
        self._agent_ttl = agent_ttl
        self._task_ttl = task_ttl
        self._submit = redis.register_script(_SUBMIT)
        self._start = redis.register_script(_START)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)
        self._heartbeat = redis.register_script(_HEARTBEAT)

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if they do not exist yet."""
        try:
            # "0", not "$": entries added before the group existed must still be delivered.
            await self._redis.xgroup_create(keys.QUEUE, keys.WORKER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def submit(self, task: Task) -> SubmitResult:
        """Record a task durably and queue its thread, in one round trip."""
        ref = task.thread
        flat: list[str] = []
        for name, value in task.to_fields().items():
            flat += [name, value]
        result = await self._submit(
            keys=[keys.task(ref.team_id, task.task_id), keys.inbox(ref), keys.queued(ref), keys.QUEUE, keys.state(ref)],
            args=[
                ref.encode(),
                task.task_id,
                task.kind.value,
                self._task_ttl,
                self._agent_ttl,
                repr(task.created_at),
                *flat,
            ],
        )
        return {1: SubmitResult.ACCEPTED, 0: SubmitResult.DUPLICATE}.get(int(result), SubmitResult.NO_AGENT)

    async def claim_new(self, consumer: str, count: int, block_ms: int) -> list[QueueEntry]:
        """Take up to `count` threads nobody has taken yet, waiting up to block_ms for one."""
        reply = await self._redis.xreadgroup(
            keys.WORKER_GROUP, consumer, {keys.QUEUE: ">"}, count=count, block=block_ms
        )
        return self._entries(reply)

    async def claim_own_pending(self, consumer: str) -> list[QueueEntry]:
        """The entries this consumer name held when its previous process stopped."""
        reply = await self._redis.xreadgroup(keys.WORKER_GROUP, consumer, {keys.QUEUE: "0"}, count=10_000)
        return self._entries(reply)

    async def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[QueueEntry]:
        """Take over entries whose owner has not renewed its lease for min_idle_ms."""
        reply = await self._redis.xautoclaim(
            keys.QUEUE, keys.WORKER_GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
        )
        return self._parse_messages(reply[1])

    async def heartbeat(self, consumer: str, entry_ids: list[str]) -> list[str]:
        """Renew the lease on the given entries; returns the ids this consumer no longer owns."""
        if not entry_ids:
            return []
        lost = await self._heartbeat(keys=[keys.QUEUE], args=[keys.WORKER_GROUP, consumer, *entry_ids])
        return [str(entry_id) for entry_id in lost]

    async def head(self, ref: ThreadRef) -> Task | None:
        """The thread's oldest unfinished task; an inbox id whose task expired or is corrupt is dropped."""
        while True:
            raw_id = await self._redis.lindex(keys.inbox(ref), 0)
            if raw_id is None:
                return None
            task_id = decode.text(raw_id)
            fields = decode.fields(await self._redis.hgetall(keys.task(ref.team_id, task_id)))
            try:
                if fields:
                    return Task.from_fields(fields)
            except CorruptRecord:
                await self._redis.hset(keys.task(ref.team_id, task_id), "status", TaskStatus.FAILED.value)
            await self._redis.lrem(keys.inbox(ref), 1, task_id)

    async def mark_running(self, task: Task) -> int:
        """Count an attempt at the task; returns the attempt number (1 for the first)."""
        attempts = await self._start(
            keys=[keys.task(task.thread.team_id, task.task_id), keys.state(task.thread)],
            args=[task.kind.value, repr(time.time()), self._agent_ttl],
        )
        return int(attempts)

    async def set_reply_ts(self, task: Task, reply_ts: str) -> None:
        """Remember the Slack message that will carry the task's answer."""
        await self._redis.hset(keys.task(task.thread.team_id, task.task_id), "reply_ts", reply_ts)

    async def finish(
        self,
        task: Task,
        status: TaskStatus,
        *,
        turns: Sequence[Turn] = (),
        usage: Usage = NO_USAGE,
        error: str = "",
        clear_agent: bool = False,
        counts_as_task: bool = True,
    ) -> bool:
        """Mark the task finished and write its turns and usage atomically; False if it was finished before."""
        ref = task.thread
        arguments = {
            "task_id": task.task_id,
            "status": status.value,
            "now": time.time(),
            "ttl": self._agent_ttl,
            "error": error[:500],
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "model_calls": usage.model_calls,
            "clear_agent": clear_agent,
            "counts_as_task": counts_as_task,
            "thread_ts": ref.thread_ts,
        }
        result = await self._finish(
            keys=[
                keys.task(ref.team_id, task.task_id),
                keys.inbox(ref),
                keys.state(ref),
                keys.turns(ref),
                keys.channel_threads(ref.team_id, ref.channel_id),
            ],
            args=[json.dumps(arguments), *(turn.to_json() for turn in turns)],
        )
        return bool(result)

    async def release(self, entry: QueueEntry) -> bool:
        """Give the thread back if its inbox is empty; False means more work arrived and the entry is kept."""
        ref = entry.thread
        result = await self._release(
            keys=[keys.inbox(ref), keys.queued(ref), keys.QUEUE], args=[entry.entry_id, keys.WORKER_GROUP]
        )
        return bool(result)

    def _entries(self, reply: Any) -> list[QueueEntry]:
        entries: list[QueueEntry] = []
        for _stream, messages in reply or []:
            entries += self._parse_messages(messages)
        return entries

    @staticmethod
    def _parse_messages(messages: list[Any]) -> list[QueueEntry]:
        entries: list[QueueEntry] = []
        for entry_id, fields in messages:
            # XREADGROUP on "0" lists entries deleted since delivery with empty fields: nothing to do for them.
            if fields and "thread" in fields:
                entries.append(QueueEntry(entry_id, ThreadRef.decode(fields["thread"])))
        return entries
