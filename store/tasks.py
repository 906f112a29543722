"""The task queue: per-thread inboxes fed into one Redis stream read by a consumer group.

Each thread with unfinished work has exactly one entry in the stream (guarded by its `queued` flag); the
consumer that holds that entry owns the thread and works its inbox in order until it is empty. So turns of
one thread never interleave, threads run concurrently, and a consumer that dies leaves its entries in the
group's pending list, where its restarted self (same name) or another consumer (after the lease) finds them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from store import decode, keys, lua
from store.coalesce import CoalescedScript
from store.errors import CorruptRecord
from store.models import Task, TaskStatus, ThreadRef

log = logging.getLogger(__name__)


class SubmitResult(Enum):
    """What intake did with a task."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # the same Slack event_id was recorded before
    NO_AGENT = "no_agent"  # a note for a thread that has no agent: nothing to remember it for


@dataclass(frozen=True)
class ResetResult:
    """What a reset did: accepted (or a duplicate), and the messages of the tasks it cancelled."""

    outcome: SubmitResult
    cancelled_replies: list[str]


def queue_lost(exc: RedisError) -> bool:
    """Whether a Redis error says the task stream or its consumer group is gone (then make it again: ensure_group).

    Every command that reads the group answers NOGROUP then, the fenced scripts and HEARTBEAT included; a blocked
    XREADGROUP whose stream is deleted answers UNBLOCKED. A script's error carries the command's message inside.
    """
    return isinstance(exc, ResponseError) and any(code in str(exc) for code in ("NOGROUP", "UNBLOCKED"))


def _queueing_keys(task: Task) -> list[str]:
    """The keys every script that queues a task starts with: the task, its thread's inbox and flag, the queue."""
    ref = task.thread
    return [keys.task(ref.team_id, task.task_id), keys.inbox(ref), keys.queued(ref), keys.QUEUE]


def _fields_json(task: Task) -> str:
    """The task's fields as one JSON argument: cheaper to send than thirty-odd separate ones on the ack path."""
    return json.dumps(task.to_fields(), separators=(",", ":"))


def cancelled_replies(raw: str | None) -> list[str]:
    """The reply ts list a reset recorded (JSON), tolerant of an empty or missing value."""
    try:
        value = json.loads(raw or "[]")
    except json.JSONDecodeError as exc:
        raise CorruptRecord(f"malformed cancelled_replies: {raw!r}") from exc
    return [str(ts) for ts in value] if isinstance(value, list) else []


@dataclass(frozen=True)
class ThreadLease:
    """A queue entry held by one consumer: the right to work one thread's inbox, and to write for it."""

    entry_id: str
    thread: ThreadRef
    consumer: str


class TaskQueue:
    """Records tasks and hands threads with work to consumers."""

    def __init__(self, redis: Redis, *, agent_ttl: int = keys.AGENT_TTL, task_ttl: int = keys.TASK_TTL) -> None:
        self._redis = redis
        self._agent_ttl = agent_ttl
        self._task_ttl = task_ttl
        self._submit = CoalescedScript(redis, lua.SUBMIT)  # intake's script: bursts share one round trip
        self._reset = redis.register_script(lua.RESET)
        self._release = redis.register_script(lua.RELEASE)
        self._heartbeat = redis.register_script(lua.HEARTBEAT)
        self._requeue = redis.register_script(lua.REQUEUE)
        self._prune_consumers = redis.register_script(lua.PRUNE_CONSUMERS)

    async def ensure_group(self) -> bool:
        """Create the stream and its consumer group if they do not exist yet, and load the Lua scripts.

        Loaded up front, the first burst of events runs EVALSHA at once instead of each meeting NOSCRIPT.
        True if the group had to be created: on the first start, or because Redis lost the queue (then call
        requeue_orphans()).
        """
        for source in lua.ALL:
            await self._redis.script_load(source)
        try:
            # "0", not "$": entries added before the group existed must still be delivered.
            await self._redis.xgroup_create(keys.QUEUE, keys.WORKER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    async def requeue_orphans(self) -> int:
        """Give every thread whose queued flag outlived its queue entry a new entry; returns how many got one.

        Without it such a thread would wait for its next mention (whose submit heals it). It SCANs the whole
        keyspace, which is why it runs only when the consumer group had to be created. Several workers doing it
        at once is harmless: each thread is checked and requeued in one atomic step.
        """
        requeued = 0
        async for raw_key in self._redis.scan_iter(match=keys.QUEUED_PATTERN, count=1000):
            key = decode.text(raw_key)
            ref = keys.thread_of_queued(key)
            if ref is not None:
                result = await self._requeue(keys=[keys.QUEUE, key, keys.inbox(ref)], args=[ref.encode()])
                requeued += int(result) == 1
        return requeued

    async def prune_consumers(self, min_idle_ms: int = keys.CONSUMER_IDLE_LIMIT_MS) -> list[str]:
        """Remove consumers idle for over min_idle_ms that hold nothing (never one with entries pending)."""
        removed = await self._prune_consumers(keys=[keys.QUEUE], args=[min_idle_ms])
        return [decode.text(name) for name in removed]

    async def submit(self, task: Task) -> SubmitResult:
        """Record a task durably and queue its thread, in one round trip."""
        ref = task.thread
        result = await self._submit(
            keys=[*_queueing_keys(task), keys.state(ref), keys.channel_threads(ref.team_id, ref.channel_id)],
            args=[
                ref.encode(),
                task.task_id,
                task.kind.value,
                self._task_ttl,
                self._agent_ttl,
                repr(task.created_at),
                _fields_json(task),
                ref.thread_ts,
            ],
        )
        return {1: SubmitResult.ACCEPTED, 0: SubmitResult.DUPLICATE}.get(int(result), SubmitResult.NO_AGENT)

    async def reset(self, task: Task) -> ResetResult:
        """Reset the task's thread at once (cancelling its work) and queue the task, which tells the thread.

        See lua.RESET. Deduplicated on the task id like submit().
        """
        ref = task.thread
        result = await self._reset(
            keys=[
                *_queueing_keys(task),
                keys.state(ref),
                keys.turns(ref),
                keys.channel_threads(ref.team_id, ref.channel_id),
            ],
            args=[
                ref.encode(),
                task.task_id,
                self._task_ttl,
                self._agent_ttl,
                _fields_json(task),
                ref.thread_ts,
                keys.task_prefix(ref.team_id),
            ],
        )
        if result == 0:
            return ResetResult(SubmitResult.DUPLICATE, [])
        return ResetResult(SubmitResult.ACCEPTED, cancelled_replies(decode.text(result)))

    async def threads_with_work(self, team_id: str, limit: int = 10_000) -> int:
        """How many of the team's threads are queued or being worked on (the queue has one entry per thread)."""
        prefix = f"{team_id}:"
        entries = await self._redis.xrange(keys.QUEUE, count=limit) or []
        return sum(1 for _id, fields in entries if decode.text((fields or {}).get("thread", "")).startswith(prefix))

    async def mark_alive(self, consumer: str) -> None:
        """Say this worker is alive (the runner does every couple of seconds); forgets names silent for an hour."""
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(keys.WORKERS, {consumer: now})
        pipe.zremrangebyscore(keys.WORKERS, "-inf", now - 3600)
        pipe.expire(keys.WORKERS, keys.WORKERS_TTL)
        await pipe.execute()

    async def mark_stopped(self, consumer: str) -> None:
        """Say this worker has stopped (a clean shutdown)."""
        await self._redis.zrem(keys.WORKERS, consumer)

    async def live_workers(self, within: float = 10.0) -> list[str]:
        """Names of the workers that said they were alive within the last `within` seconds."""
        names = await self._redis.zrangebyscore(keys.WORKERS, time.time() - within, "+inf")
        return sorted(decode.text(name) for name in names)

    async def claim_new(self, consumer: str, count: int, block_ms: int | None) -> list[ThreadLease]:
        """Take up to `count` threads nobody has taken yet, waiting up to block_ms for one (None: not at all).

        Redis times blocked reads out on its own clock (100 ms ticks by default), so a short block costs that.
        """
        reply = await self._redis.xreadgroup(
            keys.WORKER_GROUP, consumer, {keys.QUEUE: ">"}, count=count, block=block_ms
        )
        return await self._leases(reply, consumer)

    async def claim_own_pending(self, consumer: str) -> list[ThreadLease]:
        """The entries this consumer name held when its previous process stopped, with their leases renewed."""
        reply = await self._redis.xreadgroup(keys.WORKER_GROUP, consumer, {keys.QUEUE: "0"}, count=10_000)
        leases = await self._leases(reply, consumer)
        # Renew at once: the entries sat idle while the process was down, so another worker could take them.
        lost = set(await self.heartbeat(consumer, [lease.entry_id for lease in leases]))
        return [lease for lease in leases if lease.entry_id not in lost]

    async def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[ThreadLease]:
        """Take over entries whose owner has not renewed its lease for min_idle_ms."""
        reply = await self._redis.xautoclaim(
            keys.QUEUE, keys.WORKER_GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
        )
        return await self._parse_messages(reply[1], consumer)

    async def heartbeat(self, consumer: str, entry_ids: list[str]) -> list[str]:
        """Renew the lease on the given entries; returns the ids this consumer no longer owns."""
        if not entry_ids:
            return []
        lost = await self._heartbeat(keys=[keys.QUEUE], args=[consumer, *entry_ids])
        return [decode.text(entry_id) for entry_id in lost]

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

    async def note_failure(self, task: Task, reason: str) -> None:
        """Remember why the task's last attempt failed (its record expires with it)."""
        await self._redis.hset(keys.task(task.thread.team_id, task.task_id), "error", reason[:500])

    async def release(self, lease: ThreadLease) -> bool:
        """Give the thread back if its inbox is empty; False means more work arrived and the lease is kept."""
        ref = lease.thread
        result = await self._release(
            keys=[keys.QUEUE, keys.inbox(ref), keys.queued(ref)], args=[lease.entry_id, lease.consumer]
        )
        return bool(lua.unless_fenced(result, lease.entry_id))

    async def _leases(self, reply: Any, consumer: str) -> list[ThreadLease]:
        leases: list[ThreadLease] = []
        for _stream, messages in reply or []:
            leases += await self._parse_messages(messages, consumer)
        return leases

    async def _parse_messages(self, messages: list[Any], consumer: str) -> list[ThreadLease]:
        """Leases on the entries that name a thread; the others are acknowledged and deleted, or they would come
        back to some worker after every lease (and crash it, if it did not skip them) for ever."""
        leases: list[ThreadLease] = []
        dropped: list[str] = []
        for raw_id, fields in messages:
            entry_id = decode.text(raw_id)
            if not fields:  # deleted since delivery (XREADGROUP on "0" lists those with no fields)
                dropped.append(entry_id)
                continue
            try:
                leases.append(ThreadLease(entry_id, ThreadRef.decode(decode.text(fields["thread"])), consumer))
            except (KeyError, CorruptRecord, ValueError):
                names = ", ".join(sorted(decode.text(name) for name in fields))[:200]
                log.warning("dropped queue entry %s: it does not name a thread (its fields: %s)", entry_id, names)
                dropped.append(entry_id)
        if dropped:
            pipe = self._redis.pipeline(transaction=True)
            pipe.xack(keys.QUEUE, keys.WORKER_GROUP, *dropped)
            pipe.xdel(keys.QUEUE, *dropped)
            await pipe.execute()
        return leases
