"""The task queue: per-thread inboxes fed into sharded Redis streams, each read by a consumer group.

Each thread with unfinished work has exactly one entry in its shard's stream (guarded by its `queued` flag);
the consumer that holds that entry owns the thread and works its inbox in order until it is empty. So turns of
one thread never interleave, threads run concurrently, and a consumer that dies leaves its entries in the
group's pending list, where its restarted self (same name) or another consumer (after the lease) finds them.
A thread's keys and its shard's stream share one hash tag (store/keys.py), so every step is one atomic script.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from store import decode, keys, lua
from store.coalesce import CoalescedScript
from store.connection import RedisClient
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


def queue_lost(exc: Exception) -> bool:
    """Whether a Redis error says the task stream or its consumer group is gone (then make it again: ensure_group).

    Every command that reads the group answers NOGROUP then, the fenced scripts and HEARTBEAT included. A script's
    error carries the command's message inside. UNBLOCKED is not a loss by itself: see read_unblocked.
    """
    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


def read_unblocked(exc: Exception) -> bool:
    """Whether Redis ended a blocked XREADGROUP (its stream left the node, or the node became a replica): no loss.

    Redis answers "UNBLOCKED the stream key no longer exists" to a read blocked on a stream that is deleted, and
    also to one blocked on a stream that MIGRATE moves to another node while a Redis Cluster reshards: the stream,
    its group and its pending entries live on there. Reading again tells the two apart: the cluster client follows
    the slot to the stream's new node (ASK, then MOVED), while a stream really gone answers NOGROUP (queue_lost).
    A master that a failover turns into a replica ends every read blocked on it the same way ("UNBLOCKED force
    unblock from blocking operation, instance state changed"): the new master has the streams.
    """
    return isinstance(exc, ResponseError) and str(exc).startswith("UNBLOCKED")


def stream_left_node(exc: Exception) -> bool:
    """Whether a read was UNBLOCKED because its stream left the node (moved or deleted), not because the node
    itself changed role: the stream can be read again at once, while a failover takes the cluster a moment."""
    return read_unblocked(exc) and "no longer exists" in str(exc)


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
    """A queue entry held by one consumer: the right to work one thread's inbox, and to write for it.

    `taken_over`: the entry came from another consumer whose lease ran out; the first write names this one in
    the thread's flag, which refuses the other's writes from then on.
    """

    entry_id: str
    thread: ThreadRef
    consumer: str
    shard: int
    taken_over: bool = False

    @property
    def key(self) -> tuple[int, str]:
        """What tells leases apart: entry ids are unique within a shard's stream only."""
        return self.shard, self.entry_id


class TaskQueue:
    """Records tasks and hands threads with work to consumers."""

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
        self._submit = CoalescedScript(redis, lua.SUBMIT)  # intake's script: bursts share one round trip
        self._reset = redis.register_script(lua.RESET)
        self._release = redis.register_script(lua.RELEASE)
        self._heartbeat = redis.register_script(lua.HEARTBEAT)
        self._take_over = redis.register_script(lua.TAKE_OVER)
        self._make_group = redis.register_script(lua.MAKE_GROUP)
        self._requeue = redis.register_script(lua.REQUEUE)
        self._prune_consumers = redis.register_script(lua.PRUNE_CONSUMERS)

    @property
    def space(self) -> keys.KeySpace:
        """The key names this queue uses."""
        return self._keys

    @property
    def shards(self) -> int:
        """How many queue shards there are."""
        return self._keys.shards

    async def load_scripts(self) -> None:
        """Load the Lua scripts (on every primary of a cluster), so the first burst runs EVALSHA at once."""
        for source in lua.ALL:
            await self._redis.script_load(source)

    async def ensure_group(self, shard: int) -> bool:
        """Create the shard's stream and its consumer group if they do not exist yet (from entry "0": entries added
        before the group existed must still be delivered).

        True if the shard owes a requeue: its group had to be created (on the first start, or because Redis lost
        the shard's queue), now or by a worker that died before it finished requeue_orphans(shard).
        """
        made = await self._make_group(keys=[self._keys.queue(shard), self._keys.requeue_mark(shard)], args=[keys.DAY])
        return bool(int(made)) or bool(await self._redis.exists(self._keys.requeue_mark(shard)))

    async def requeue_orphans(self, shard: int) -> int:
        """Give every thread of the shard whose queued flag outlived its entry a new entry; returns how many.

        Without it such a thread would wait for its next mention. It SCANs the keyspace (every primary of a
        cluster), which is why it runs only when a group had to be created. Several workers doing it at once is
        harmless: each thread is checked and requeued in one atomic step.
        """
        requeued = 0
        async for raw_key in self._redis.scan_iter(match=self._keys.queued_pattern(shard), count=1000):
            key = decode.text(raw_key)
            ref = self._keys.thread_of_queued(key)
            if ref is not None:
                result = await self._requeue(
                    keys=[self._keys.queue(shard), key, self._keys.inbox(ref)], args=[ref.encode()]
                )
                requeued += int(result) == 1
        await self._redis.delete(self._keys.requeue_mark(shard))  # every flag was seen: the shard owes nothing
        return requeued

    async def prune_consumers(self, shard: int, min_idle_ms: int = keys.CONSUMER_IDLE_LIMIT_MS) -> list[str]:
        """Remove the shard's consumers idle for over min_idle_ms that hold nothing (never one with work)."""
        removed = await self._prune_consumers(keys=[self._keys.queue(shard)], args=[min_idle_ms])
        return [decode.text(name) for name in removed]

    async def submit(self, task: Task) -> SubmitResult:
        """Record a task durably and queue its thread, in one round trip."""
        ref = task.thread
        result = await self._submit(
            keys=self._queueing_keys(task),
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

    def _queueing_keys(self, task: Task) -> list[str]:
        """The keys SUBMIT and RESET start with: the task, its thread's inbox, flag, queue, state and channel index."""
        ref, space = task.thread, self._keys
        return [
            space.task(ref, task.task_id),
            space.inbox(ref),
            space.queued(ref),
            space.thread_queue(ref),
            space.state(ref),
            space.thread_channel_threads(ref),
        ]

    async def reset(self, task: Task) -> ResetResult:
        """Reset the task's thread at once (cancelling its work) and queue the task, which tells the thread.

        See lua.RESET. Deduplicated on the task id like submit().
        """
        ref, space = task.thread, self._keys
        for _ in range(100):  # the inbox changes only as fast as people write in one thread
            inbox = [decode.text(task_id) for task_id in await self._redis.lrange(space.inbox(ref), 0, -1)]
            result = await self._reset(
                keys=[*self._queueing_keys(task), *(space.task(ref, task_id) for task_id in inbox)],
                args=[
                    ref.encode(),
                    task.task_id,
                    self._task_ttl,
                    self._agent_ttl,
                    _fields_json(task),
                    ref.thread_ts,
                    *inbox,
                ],
            )
            if result == lua.INBOX_CHANGED:
                continue
            if result == 0:
                return ResetResult(SubmitResult.DUPLICATE, [])
            return ResetResult(SubmitResult.ACCEPTED, cancelled_replies(decode.text(result)))
        raise RuntimeError(f"the inbox of thread {ref.encode()} kept changing; reset not done")

    async def threads_with_work(self, team_id: str, limit: int = 10_000) -> int:
        """How many of the team's threads are queued or being worked on (each has one entry in its shard)."""
        prefix = f"{team_id}:"
        pipe = self._redis.pipeline(transaction=False)
        for queue in self._keys.queues():
            pipe.xrange(queue, count=limit)
        counted = 0
        for entries in await pipe.execute():
            counted += sum(
                1 for _id, fields in entries or [] if decode.text((fields or {}).get("thread", "")).startswith(prefix)
            )
        return counted

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

    def reader_shards(self) -> list[list[int]]:
        """How to split the shards among blocking reads: one read for all of them on a standalone Redis (one
        connection waits for every shard), one per shard on a cluster (a read cannot span slots)."""
        if isinstance(self._redis, RedisCluster):
            return [[shard] for shard in range(self.shards)]
        return [list(range(self.shards))]

    async def claim_new(self, consumer: str, shards: list[int], count: int, block_ms: int | None) -> list[ThreadLease]:
        """Take up to `count` threads nobody has taken yet from each of the shards, waiting up to block_ms for one
        (None: not at all). Redis times blocked reads out on its own clock (100 ms ticks by default)."""
        streams: dict[Any, Any] = {self._keys.queue(shard): ">" for shard in shards}
        by_stream = {self._keys.queue(shard): shard for shard in shards}
        reply = await self._redis.xreadgroup(keys.WORKER_GROUP, consumer, streams, count=count, block=block_ms)
        leases: list[ThreadLease] = []
        for stream, messages in _stream_messages(reply):
            leases += await self._parse_messages(messages, consumer, by_stream[decode.text(stream)])
        return leases

    async def claim_own_pending(self, consumer: str, shard: int) -> list[ThreadLease]:
        """The shard's entries this consumer name held when its previous process stopped, leases renewed."""
        queue = self._keys.queue(shard)
        reply = await self._redis.xreadgroup(keys.WORKER_GROUP, consumer, {queue: "0"}, count=10_000)
        leases = await self._leases(reply, consumer, shard)
        # Renew at once: the entries sat idle while the process was down, so another worker could take them.
        lost = set(await self.heartbeat(consumer, shard, [lease.entry_id for lease in leases]))
        return [lease for lease in leases if lease.entry_id not in lost]

    async def claim_stale(self, consumer: str, shard: int, min_idle_ms: int, count: int = 100) -> list[ThreadLease]:
        """Take over up to `count` of the shard's entries whose owner has not renewed its lease for min_idle_ms.

        Each is taken with its thread's flag in one step (lua.TAKE_OVER), so its old owner can write nothing more.
        """
        queue = self._keys.queue(shard)
        stale = await self._redis.xpending_range(
            queue, keys.WORKER_GROUP, min="-", max="+", count=count, idle=min_idle_ms
        )
        leases: list[ThreadLease] = []
        for row in stale:
            entry_id = decode.text(row["message_id"])
            [found] = await self._redis.xrange(queue, entry_id, entry_id) or [(entry_id, {})]
            parsed = await self._parse_messages([found], consumer, shard, taken_over=True)
            if not parsed:  # deleted, or naming no thread of the shard: dropped by _parse_messages
                continue
            lease = parsed[0]
            taken = await self._take_over(
                keys=[self._keys.queued(lease.thread), queue], args=[entry_id, consumer, min_idle_ms]
            )
            if int(taken) == 1:
                leases.append(lease)
        return leases

    async def heartbeat(self, consumer: str, shard: int, entry_ids: list[str]) -> list[str]:
        """Renew the lease on the given entries of the shard; returns the ids this consumer no longer owns."""
        if not entry_ids:
            return []
        lost = await self._heartbeat(keys=[self._keys.queue(shard)], args=[consumer, *entry_ids])
        return [decode.text(entry_id) for entry_id in lost]

    async def head(self, ref: ThreadRef) -> Task | None:
        """The thread's oldest unfinished task; an inbox id whose task expired or is corrupt is dropped."""
        while True:
            raw_id = await self._redis.lindex(self._keys.inbox(ref), 0)
            if raw_id is None:
                return None
            task_id = decode.text(raw_id)
            task_key = self._keys.task(ref, task_id)
            fields = decode.fields(await self._redis.hgetall(task_key))
            try:
                if fields:
                    return Task.from_fields(fields)
            except CorruptRecord:
                await self._redis.hset(task_key, "status", TaskStatus.FAILED.value)
            await self._redis.lrem(self._keys.inbox(ref), 1, task_id)

    async def note_failure(self, task: Task, reason: str) -> None:
        """Remember why the task's last attempt failed (its record expires with it)."""
        await self._redis.hset(self._keys.task(task.thread, task.task_id), "error", reason[:500])

    async def release(self, lease: ThreadLease) -> bool:
        """Give the thread back if its inbox is empty; False means more work arrived and the lease is kept."""
        ref = lease.thread
        result = await self._release(
            keys=[self._keys.queued(ref), self._keys.queue(lease.shard), self._keys.inbox(ref)],
            args=[lease.entry_id, lease.consumer],
        )
        return bool(lua.unless_fenced(result, lease.entry_id))

    async def _leases(self, reply: Any, consumer: str, shard: int) -> list[ThreadLease]:
        leases: list[ThreadLease] = []
        for _stream, messages in _stream_messages(reply):
            leases += await self._parse_messages(messages, consumer, shard)
        return leases

    async def _parse_messages(
        self, messages: list[Any], consumer: str, shard: int, *, taken_over: bool = False
    ) -> list[ThreadLease]:
        """Leases on the entries that name a thread of the shard; the others are acknowledged and deleted, or they
        would come back to some worker after every lease (and crash it, if it did not skip them) for ever."""
        leases: list[ThreadLease] = []
        dropped: list[str] = []
        for raw_id, fields in messages:
            entry_id = decode.text(raw_id)
            if not fields:  # deleted since delivery (XREADGROUP on "0" lists those with no fields)
                dropped.append(entry_id)
                continue
            try:
                ref = ThreadRef.decode(decode.text(fields["thread"]))
                if self._keys.shard_of(ref) != shard:
                    raise ValueError("a thread of another shard")
                leases.append(ThreadLease(entry_id, ref, consumer, shard, taken_over))
            except (KeyError, CorruptRecord, ValueError):
                names = ", ".join(sorted(decode.text(name) for name in fields))[:200]
                log.warning(
                    "dropped queue entry %s: it does not name a thread of its shard (fields: %s)", entry_id, names
                )
                dropped.append(entry_id)
        if dropped:
            queue = self._keys.queue(shard)
            pipe = self._redis.pipeline(transaction=False)
            pipe.xack(queue, keys.WORKER_GROUP, *dropped)
            pipe.xdel(queue, *dropped)
            await pipe.execute()
        return leases


def _stream_messages(reply: Any) -> list[tuple[Any, list[Any]]]:
    """XREADGROUP's reply as (stream, messages) pairs: RESP2 gives a list of pairs, RESP3 a dict."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(reply.items())
    return [(stream, messages) for stream, messages in reply]


async def create_groups(redis: RedisClient, space: keys.KeySpace) -> None:
    """Make every shard's stream and consumer group that is missing, from entry "0" (so that entries added before a
    group existed are delivered), without marking a requeue: for the migrations, which add every entry they need."""
    for queue in space.queues():
        try:
            await redis.xgroup_create(queue, keys.WORKER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
