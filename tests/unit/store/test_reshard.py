"""Changing the number of queue shards (store/reshard.py), on data the store's own classes wrote under 4 shards."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from store import keys
from store.connection import RedisClient
from store.errors import ShardChangeRefused, UnusableRedis
from store.journal import TaskJournal
from store.keys import KeySpace
from store.layout import check_layout
from store.models import TaskStatus, ThreadRef, Turn
from store.reshard import ReshardReport, change_shards
from store.tasks import TaskQueue, ThreadLease
from store.threads import ThreadStore
from tests.conftest import redis_url_for_tests
from tests.integration.redis_cluster import LocalCluster
from tests.unit.store.reshard_data import (
    CLAIMED,
    KEPT,
    KEPT_RUNNING,
    NEW,
    OLD,
    QUEUED,
    RUNNING,
    STEPS,
    TAKEN_OVER,
    THREADS,
    WITH_WORK,
    build,
    view,
)

Saved = dict[str, tuple[int, bytes]]


async def save(redis: Redis) -> Saved:
    """Every key's DUMP and remaining TTL."""
    return {key: (int(await redis.pttl(key)), await redis.dump(key)) for key in await redis.keys("*")}


async def load(redis: Redis, saved: Saved) -> None:
    """Empty the database and put the saved keys back, each with the TTL it had."""
    pipe = redis.pipeline(transaction=False)
    pipe.flushdb()
    for key, (pttl, payload) in saved.items():
        pipe.restore(key, max(pttl, 0), payload, replace=True)
    await pipe.execute()


def tags(space: KeySpace) -> set[str]:
    """The hash tags of a key space's shards, with their braces."""
    return {queue.split(":")[1] for queue in space.queues()}


async def snapshot(redis: Redis, space: KeySpace) -> dict[str, Any]:
    """Every key's type, value and whether it expires; stream entry ids (they carry the time they were made) are
    replaced by the thread they name, in the streams and in the flags that hold them."""
    found = sorted(await redis.keys("*"))
    pipe = redis.pipeline(transaction=False)
    for key in found:
        pipe.type(key)
        pipe.pttl(key)
    described = await pipe.execute()
    kinds = dict(zip(found, described[0::2], strict=True))
    pipe = redis.pipeline(transaction=False)
    for key, kind in kinds.items():
        if kind == "stream":
            pipe.xrange(key)
            pipe.xinfo_groups(key)
        elif kind == "hash":
            pipe.hgetall(key)
        elif kind == "list":
            pipe.lrange(key, 0, -1)
        elif kind == "zset":
            pipe.zrange(key, 0, -1, withscores=True)
        else:
            pipe.get(key)
    values = iter(await pipe.execute())
    rows: dict[str, list[Any]] = {}
    threads: dict[tuple[str, str], str] = {}
    for (key, kind), pttl in zip(kinds.items(), described[1::2], strict=True):
        value = next(values)
        if kind == "stream":
            threads.update({(key, entry_id): fields["thread"] for entry_id, fields in value})
            groups = [(group["name"], group["pending"]) for group in next(values)]
            value = [sorted(fields["thread"] for _, fields in value), groups]
        rows[key] = [kind, value, pttl > 0]
    for key, row in rows.items():
        ref = space.thread_of_queued(key)
        if ref is not None:
            entry, _, consumer = row[1].partition(" ")
            row[1] = ["entry of " + threads.get((space.thread_queue(ref), entry), "nothing"), consumer]
    return rows


class CrashingRedis(Redis):
    """A client whose process dies right after its `survive`-th write, alone or in a pipeline: that write is done,
    nothing after it is."""

    WRITES = frozenset({"RESTORE", "DEL", "EVAL", "EVALSHA", "HSET", "HDEL", "XGROUP CREATE", "ZREM"})
    READS = frozenset({"HGET", "HGETALL", "EXISTS", "DUMP", "PTTL", "SCAN", "ZSCAN", "ZRANGEBYSCORE", "CLIENT LIST"})
    READS |= {"INFO", "SCRIPT LOAD"}  # (as good as a read: it changes nothing the bot reads)
    survive = 1 << 30
    writes = 0
    seen: set[str]

    def count(self, name: str) -> bool:
        """Count one command; whether the process is still alive after it."""
        self.seen.add(name.upper())
        if name.upper() in self.WRITES:
            self.writes += 1
        return self.writes < self.survive

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run the command, then die if it was the last write the process survives."""
        result = await super().execute_command(*args, **options)
        if not self.count(str(args[0])):
            raise RedisConnectionError("the process died")
        return result

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> CrashingPipeline:
        """A pipeline that sends only the commands up to the last write the process survives."""
        return CrashingPipeline(self, transaction, shard_hint)


class CrashingPipeline(Pipeline):
    """A CrashingRedis's pipeline (non-transactional pipelines are sent in order on one connection)."""

    def __init__(self, client: CrashingRedis, transaction: bool, shard_hint: str | None) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, shard_hint)
        self.client = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the commands the process lives to send; die after them if it does not live to send them all."""
        sent = 0
        alive = True
        for args, _options in self.command_stack:
            sent += 1
            if not self.client.count(str(args[0])):
                alive = False
                break
        self.command_stack = self.command_stack[:sent]
        result = await super().execute(raise_on_error)
        if not alive:
            raise RedisConnectionError("the process died")
        return result


@pytest.fixture
async def crashing() -> Any:
    """A CrashingRedis on the test database."""
    client = CrashingRedis.from_url(redis_url_for_tests(), decode_responses=True)
    client.seen = set()
    try:
        yield client
    finally:
        await client.aclose()


async def work_all(redis: RedisClient, space: KeySpace, consumer: str = "web.9") -> dict[ThreadRef, list[str]]:
    """Take every thread with work (new entries, and those whose worker stopped) and finish each task; the task ids
    finished, by thread. A running task must resume: its attempts go on and its journal is read back."""
    queue, journal = TaskQueue(redis, space), TaskJournal(redis, space)
    leases: list[ThreadLease] = []
    for shard in range(space.shards):  # (before the new ones: it would take those again from this consumer)
        leases += await queue.claim_stale(consumer, shard, min_idle_ms=0)
    for shards in queue.reader_shards():
        leases += await queue.claim_new(consumer, shards, count=100, block_ms=None)
    taken = [lease.thread for lease in leases]
    assert sorted(taken, key=ThreadRef.encode) == sorted(set(taken), key=ThreadRef.encode), "a thread taken twice"
    done: dict[ThreadRef, list[str]] = {}
    for lease in leases:
        done[lease.thread] = await finish_inbox(queue, journal, lease)
    for shards in queue.reader_shards():
        assert await queue.claim_new(consumer, shards, count=100, block_ms=None) == []
    return done


async def finish_inbox(queue: TaskQueue, journal: TaskJournal, lease: ThreadLease) -> list[str]:
    """Run the lease's thread's tasks to the end of its inbox, checking that a started one resumes its journal."""
    finished: list[str] = []
    while (head := await queue.head(lease.thread)) is not None:
        attempt = await journal.start(lease, head)
        resumed = head.status is TaskStatus.RUNNING
        assert attempt == (2 if resumed else 1), head
        steps = await journal.steps(head, attempt=attempt)
        assert steps == (STEPS[lease.thread] if resumed else []), head
        await journal.finish(lease, head, TaskStatus.DONE, turns=[Turn("assistant", f"done {head.task_id}")])
        finished.append(head.task_id)
        if journal.released(lease):
            break
    return finished


async def test_every_agent_task_index_and_usage_total_reads_the_same_under_the_new_number(redis: Redis) -> None:
    """Agents with their turns and summary, current tasks, inboxes, task records (journals too), channel indexes,
    usage totals and counts read the same through the store's readers before (4 shards) and after (7)."""
    await build(redis)
    before = await view(redis, OLD)
    report = await change_shards(redis, OLD, NEW)
    assert await view(redis, NEW) == before
    assert report == ReshardReport(
        threads=6, queued=4, kept=2, tasks=10, index_entries=6, usage_totals=3, dropped=0, unknown=0, streams=3
    )
    state, turns = await ThreadStore(redis, NEW).agent(THREADS[0])
    assert state is not None and state.summary == "Ana asked about the Q3 budget." and len(turns) == 3


async def test_queued_and_running_work_is_taken_once_and_running_tasks_resume(redis: Redis) -> None:
    """Every thread with work is taken exactly once under the new number, its tasks in order; a task that was
    running goes on with its attempts and journal; then every stream is empty."""
    await build(redis)
    await change_shards(redis, OLD, NEW)
    assert await work_all(redis, NEW) == WITH_WORK
    for queue in NEW.queues():
        assert await redis.xlen(queue) == 0


async def test_a_kept_thread_keeps_its_entry_and_lease_and_moved_ones_get_a_new_undelivered_entry(
    redis: Redis,
) -> None:
    """A thread whose shard's tag is the same in both numbers keeps its flag and pending entry; a moved one's flag
    names a new entry of its new shard's stream that no consumer has yet."""
    await build(redis)
    flag = await redis.get(OLD.queued(KEPT_RUNNING))
    await change_shards(redis, OLD, NEW)
    assert await redis.get(NEW.queued(KEPT_RUNNING)) == flag
    for ref in (QUEUED, RUNNING, TAKEN_OVER, CLAIMED):
        entry = await redis.get(NEW.queued(ref))
        assert " " not in entry
        [(_, fields)] = await redis.xrange(NEW.thread_queue(ref), entry, entry)
        assert fields == {"thread": ref.encode()}
        assert not await redis.xpending_range(NEW.thread_queue(ref), keys.WORKER_GROUP, entry, entry, 1)
    shared = OLD.thread_queue(QUEUED)
    assert shared == NEW.queue(0)  # the old stream of QUEUED stays (tag "0-0"), without its entry
    assert [fields["thread"] for _, fields in await redis.xrange(shared)] == [KEPT_RUNNING.encode()]


async def test_ttls_are_kept_and_keys_without_one_stay_without(redis: Redis) -> None:
    """Each moved key expires when its old copy would have (within a second); inboxes and flags still have none."""
    await build(redis)
    old_keys = {key: await redis.pttl(key) for key in await redis.keys("agent:*")}
    await change_shards(redis, OLD, NEW)
    moved = [ref for ref in THREADS if ref not in KEPT]
    for ref in moved:
        for old_key, new_key in ((OLD.state(ref), NEW.state(ref)), (OLD.inbox(ref), NEW.inbox(ref))):
            if old_key in old_keys:
                assert abs(await redis.pttl(new_key) - old_keys[old_key]) < 1000, new_key
        if OLD.queued(ref) in old_keys:
            assert await redis.pttl(NEW.queued(ref)) == -1
    assert await redis.pttl(NEW.inbox(QUEUED)) == -1
    task_key = NEW.task(QUEUED, "EvQ0")
    assert abs(await redis.pttl(task_key) - old_keys[OLD.task(QUEUED, "EvQ0")]) < 1000
    old_usage = OLD.thread_channel_usage(THREADS[0])  # shard 3 of 4's: it goes to shard 3 of 7's
    assert 0 < await redis.pttl(NEW.channel_usage("T1", "C1", 3)) <= old_keys[old_usage]


async def test_no_key_of_the_old_tags_is_left_and_the_layout_says_the_new_number(redis: Redis) -> None:
    """After the change only keys of the new shards' tags remain (a tag both numbers share holds new keys), no
    staging key, no old stream; agent:layout says 7 shards and no change in progress."""
    await build(redis)
    await change_shards(redis, OLD, NEW)
    gone = tags(OLD) - tags(NEW)
    left = await redis.keys("agent:*")
    assert not [key for key in left if any(tag in key for tag in gone)]
    assert not [key for key in left if key.split(":")[-1].isdigit()]  # staged usage: ...:usage:S
    assert await redis.hgetall(keys.LAYOUT) == {"version": "2", "shards": "7"}
    assert sorted(key for key in left if key.endswith(":queue")) == sorted(NEW.queues())


async def test_a_crash_after_any_write_then_a_second_run_ends_like_one_clean_run(
    redis: Redis, crashing: CrashingRedis
) -> None:
    """Whichever write the process dies after, running the change again leaves the same data as one clean run."""
    await build(redis)
    saved = await save(redis)
    crashing.survive = 1 << 30
    await change_shards(crashing, OLD, NEW, concurrency=1)
    clean, writes = await snapshot(redis, NEW), crashing.writes
    assert crashing.seen <= CrashingRedis.WRITES | CrashingRedis.READS, "a command the crashes do not count"
    for survive in range(1, writes):
        await load(redis, saved)
        crashing.survive, crashing.writes = survive, 0
        with pytest.raises(RedisConnectionError):
            await change_shards(crashing, OLD, NEW, concurrency=1)
        await change_shards(redis, OLD, NEW, page_keys=4)  # (a staging key may come before or after its source)
        assert await snapshot(redis, NEW) == clean, f"died after write {survive}"
    assert writes > 40  # every thread, task, index and usage total was interrupted at each of its writes


async def test_a_bot_start_is_refused_while_a_change_is_unfinished_and_accepted_after(
    redis: Redis, crashing: CrashingRedis
) -> None:
    """A change that died half way makes a start with either number refuse, naming the command that finishes it;
    once it ran again, a start with the new number goes on and one with the old number is told how to change."""
    await build(redis)
    crashing.survive = 20
    with pytest.raises(RedisConnectionError):
        await change_shards(crashing, OLD, NEW, concurrency=1)
    for space in (OLD, NEW):
        with pytest.raises(UnusableRedis, match="run `python -m bot migrate --queue-shards 7` again"):
            await check_layout(redis, space, record_version=True)
    await change_shards(redis, OLD, NEW)
    await check_layout(redis, NEW, record_version=True)
    with pytest.raises(UnusableRedis, match=r"set QUEUE_SHARDS=7, or, .* `python -m bot migrate --queue-shards 4`"):
        await check_layout(redis, OLD, record_version=True)


async def test_an_unfinished_change_is_finished_only_to_its_own_number(redis: Redis, crashing: CrashingRedis) -> None:
    """While a change to 7 is unfinished, a change to another number is refused and changes nothing."""
    await build(redis)
    crashing.survive = 20
    with pytest.raises(RedisConnectionError):
        await change_shards(crashing, OLD, NEW, concurrency=1)
    before = await snapshot(redis, NEW)
    with pytest.raises(ShardChangeRefused, match="a change to 7 queue shards has not finished"):
        await change_shards(redis, OLD, KeySpace(5))
    assert await snapshot(redis, NEW) == before


async def test_it_refuses_while_a_worker_said_it_was_alive_within_a_minute(redis: Redis) -> None:
    """A worker that said it was alive 30 s ago stops the change before it writes anything; one silent for two
    minutes (killed) does not."""
    await build(redis)
    await redis.zadd(keys.WORKERS, {"worker.1": time.time() - 30, "worker.2": time.time() - 120})
    before = await snapshot(redis, OLD)
    with pytest.raises(ShardChangeRefused, match=r"worker\.1 said it was alive") as refused:
        await change_shards(redis, OLD, NEW)
    assert "worker.2" not in str(refused.value)
    assert await snapshot(redis, OLD) == before
    await redis.zrem(keys.WORKERS, "worker.1")
    await change_shards(redis, OLD, NEW)
    assert await redis.hget(keys.LAYOUT, "shards") == "7"


async def test_it_refuses_while_a_bot_process_is_connected(redis: Redis) -> None:
    """A connection named as a bot process's (agent-worker:NAME) stops the change; once it is closed, it runs."""
    await build(redis)
    process = Redis.from_url(redis_url_for_tests(), client_name="agent-worker:web.1")
    await process.ping()
    try:
        with pytest.raises(ShardChangeRefused, match=r"web\.1 is connected"):
            await change_shards(redis, OLD, NEW)
        assert await redis.hgetall(keys.LAYOUT) == {"version": "2", "shards": "4"}
    finally:
        await process.aclose()
    await change_shards(redis, OLD, NEW)
    assert await redis.hget(keys.LAYOUT, "shards") == "7"


async def test_data_of_another_number_is_refused(redis: Redis) -> None:
    """A change from a number the data is not laid out in is refused."""
    await build(redis)
    with pytest.raises(ShardChangeRefused, match="laid out in 4 queue shards, not 5"):
        await change_shards(redis, KeySpace(5), NEW)


async def test_fewer_shards_again_add_up_usage_totals_that_share_a_shard(redis: Redis) -> None:
    """Changing 4 -> 7 -> 3 (several old shards' usage into one new shard's) reads the same at every step, and the
    work left is taken once."""
    await build(redis)
    before = await view(redis, OLD)
    await change_shards(redis, OLD, NEW)
    report = await change_shards(redis, NEW, KeySpace(3))
    assert await view(redis, KeySpace(3)) == before
    assert report.usage_totals > 0 and await redis.hget(keys.LAYOUT, "shards") == "3"
    assert await work_all(redis, KeySpace(3)) == WITH_WORK


async def test_on_a_cluster_every_thread_moves_to_its_new_slot_and_is_worked_once(
    redis_cluster: LocalCluster,
) -> None:
    """On a three-master Redis Cluster (old and new keys in different slots) the change reads the same and leaves
    no old key; the work is taken once."""
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        await build(client)
        before = await view(client, OLD)
        await change_shards(client, OLD, NEW)
        assert await view(client, NEW) == before
        gone = tags(OLD) - tags(NEW)
        assert not [key async for key in client.scan_iter(match="agent:*") if any(tag in key for tag in gone)]
        assert await work_all(client, NEW) == WITH_WORK
    finally:
        await client.aclose()
