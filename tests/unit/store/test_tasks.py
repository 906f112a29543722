"""TaskQueue against a real Redis: intake, claiming, leases and release."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from store import keys
from store.errors import CorruptRecord, LeaseLost
from store.journal import TaskJournal
from store.keys import KeySpace
from store.models import TaskKind, TaskStatus, ThreadRef, Turn
from store.tasks import SubmitResult, TaskQueue
from store.threads import ThreadStore
from tests.unit.store.conftest import ELSEWHERE, OTHER, SPACE, THREAD, claim_all, lease_on, make_task

SHARD = SPACE.shard_of(THREAD)


async def test_submit_records_task_once_per_event_id(queue: TaskQueue, redis: Redis) -> None:
    """The same Slack event submitted twice gives one task and one inbox entry."""
    assert await queue.submit(make_task("Ev1")) is SubmitResult.ACCEPTED
    assert await queue.submit(make_task("Ev1")) is SubmitResult.DUPLICATE
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Ev1"]
    assert await redis.xlen(SPACE.thread_queue(THREAD)) == 1
    assert sum([await redis.xlen(stream) for stream in SPACE.queues()]) == 1  # only in the thread's own shard


async def test_submit_writes_no_agent_state_yet_the_thread_reads_as_a_queued_agent(
    queue: TaskQueue, redis: Redis
) -> None:
    """An answer's agent is written when its first task finishes; until then the thread reads as a new, queued one."""
    task = make_task("Ev1")
    await queue.submit(task)
    assert not await redis.exists(SPACE.state(THREAD))
    store = ThreadStore(redis, SPACE)
    state = await store.state(THREAD)
    assert state is not None and (state.status, state.turns, state.created_at) == ("queued", 0, task.created_at)
    assert await store.channel_threads("T1", "C1") == [THREAD.thread_ts]  # a channel reset reaches it already


async def test_only_the_queue_entry_its_flag_and_the_inbox_live_without_a_ttl(queue: TaskQueue, redis: Redis) -> None:
    """The task and the channel index expire; the shard's stream, the flag and the inbox live exactly as long as
    the thread's entry, without a TTL, and the flag and the inbox go with the entry when the thread is released."""
    await queue.submit(make_task("Ev1"))
    unexpiring = {SPACE.queued(THREAD), SPACE.inbox(THREAD), *SPACE.queues()}
    for key in await redis.keys("*"):
        ttl = await redis.ttl(key)
        if key in unexpiring:
            assert ttl == -1, key
        else:
            assert ttl > 0, key
    assert await redis.exists(SPACE.task(THREAD, "Ev1"), SPACE.thread_channel_threads(THREAD)) == 2
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    await TaskJournal(redis, SPACE).finish(lease, task, TaskStatus.DONE)
    assert not await redis.exists(SPACE.queued(THREAD), SPACE.inbox(THREAD))
    assert await redis.xlen(SPACE.thread_queue(THREAD)) == 0


async def test_note_is_dropped_for_a_thread_without_an_agent(queue: TaskQueue, redis: Redis) -> None:
    """A plain thread message is only remembered where an agent exists (or its first mention waits)."""
    assert await queue.submit(make_task("Ev1", TaskKind.NOTE)) is SubmitResult.NO_AGENT
    assert await redis.exists(SPACE.task(THREAD, "Ev1")) == 0
    assert await queue.submit(make_task("Ev2", TaskKind.ANSWER)) is SubmitResult.ACCEPTED
    assert await queue.submit(make_task("Ev3", TaskKind.NOTE)) is SubmitResult.ACCEPTED


async def test_one_queue_entry_per_thread_and_inbox_in_arrival_order(queue: TaskQueue, journal: TaskJournal) -> None:
    """Several tasks of one thread share one queue entry and come out oldest first."""
    for task_id in ("Ev1", "Ev2", "Ev3"):
        await queue.submit(make_task(task_id))
    await queue.submit(make_task("Ev9", thread=OTHER))
    await queue.submit(make_task("Ev8", thread=ELSEWHERE))
    leases = await claim_all(queue)
    assert sorted(lease.thread.thread_ts for lease in leases) == sorted(
        [THREAD.thread_ts, OTHER.thread_ts, ELSEWHERE.thread_ts]
    )
    assert {lease.thread: lease.shard for lease in leases} == {
        ref: SPACE.shard_of(ref) for ref in (THREAD, OTHER, ELSEWHERE)
    }
    [lease] = [lease for lease in leases if lease.thread == THREAD]
    seen = []
    while (task := await queue.head(THREAD)) is not None:
        seen.append(task.task_id)
        await journal.finish(lease, task, TaskStatus.DONE)
    assert seen == ["Ev1", "Ev2", "Ev3"]


async def test_one_read_claims_up_to_its_count_from_each_of_its_shards(queue: TaskQueue) -> None:
    """claim_new reads several shards in one XREADGROUP and takes up to `count` entries from each of them."""
    for task_id, ref in (("Ev1", THREAD), ("Ev2", OTHER), ("Ev3", ELSEWHERE)):
        await queue.submit(make_task(task_id, thread=ref))
    shards = [SHARD, SPACE.shard_of(ELSEWHERE)]
    first = await queue.claim_new("web.1", shards, count=1, block_ms=None)
    assert sorted(lease.shard for lease in first) == sorted(shards)  # one of the two in SHARD, and ELSEWHERE
    [second] = await queue.claim_new("web.1", shards, count=1, block_ms=None)
    assert {lease.thread for lease in [*first, second]} == {THREAD, OTHER, ELSEWHERE}
    assert await queue.claim_new("web.1", shards, count=1, block_ms=None) == []


async def test_a_standalone_redis_has_one_reader_for_every_shard_and_a_cluster_one_per_shard(redis: Redis) -> None:
    """One blocking read (one connection) waits for every shard of a standalone Redis; a cluster read cannot span
    slots, so each shard gets its own."""
    assert TaskQueue(redis, KeySpace(3)).reader_shards() == [[0, 1, 2]]
    cluster = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", 1)])  # never connected: nothing is sent
    try:
        assert TaskQueue(cluster, KeySpace(3)).reader_shards() == [[0], [1], [2]]
    finally:
        await cluster.aclose()


async def test_finishing_the_last_task_gives_the_thread_back_and_never_strands_one_submitted_meanwhile(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """FINISH keeps the entry while another task waits (a release then refuses too) and releases the thread with
    its last task; a task submitted after that gets a new entry."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await queue.submit(make_task("Ev2"))  # arrives while Ev1 runs: it joins the thread's entry
    assert await redis.xlen(SPACE.thread_queue(THREAD)) == 1
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev1"
    assert await journal.finish(lease, task, TaskStatus.DONE) is True
    assert journal.released(lease) is False
    assert await redis.get(SPACE.queued(THREAD)) == lease.entry_id
    assert await queue.release(lease) is False
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    assert await journal.finish(lease, task, TaskStatus.DONE) is True
    assert journal.released(lease) is True
    assert journal.released(lease) is False  # said once
    assert await redis.xlen(SPACE.thread_queue(THREAD)) == 0
    assert (await redis.xpending(SPACE.thread_queue(THREAD), keys.WORKER_GROUP))["pending"] == 0
    assert not await redis.exists(SPACE.queued(THREAD), SPACE.inbox(THREAD))
    with pytest.raises(LeaseLost):  # a thread given back is not held any more
        await journal.check_lease(lease)
    await queue.submit(make_task("Ev3"))
    [again] = await claim_all(queue)
    assert again.thread == THREAD and again.entry_id != lease.entry_id


async def test_release_gives_back_a_thread_whose_inbox_emptied_otherwise(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A thread whose only task expired has an empty inbox at the head read: RELEASE gives it back."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await redis.delete(SPACE.task(THREAD, "Ev1"))  # expired (TASK_TTL) before the worker came to it
    assert await queue.head(THREAD) is None
    assert await queue.release(lease) is True
    assert await redis.xlen(SPACE.thread_queue(THREAD)) == 0 and not await redis.exists(SPACE.queued(THREAD))


async def test_own_pending_entries_come_back_to_the_same_consumer(queue: TaskQueue) -> None:
    """A restarted process with the same consumer name gets the threads it held, and nobody else does."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    assert await queue.claim_own_pending("web.2", SHARD) == []
    assert await queue.claim_own_pending("web.1", (SHARD + 1) % SPACE.shards) == []
    assert await queue.claim_own_pending("web.1", SHARD) == [lease]


async def test_stale_entries_move_to_a_live_consumer_and_the_old_owner_is_fenced(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """After the lease another consumer takes the thread; the old owner's heartbeat is refused at once and, from
    the new owner's first write on, so is every write of the old owner."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue)
    assert await queue.claim_stale("web.2", SHARD, min_idle_ms=60_000) == []
    assert await queue.heartbeat("web.1", SHARD, [old.entry_id]) == []
    [new] = await queue.claim_stale("web.2", SHARD, min_idle_ms=0)
    assert (new.consumer, new.thread, new.entry_id, new.taken_over) == ("web.2", THREAD, old.entry_id, True)
    assert await queue.heartbeat("web.1", SHARD, [old.entry_id]) == [old.entry_id]
    task = await queue.head(THREAD)
    assert task is not None
    assert await journal.start(new, task) == 1
    with pytest.raises(LeaseLost):
        await journal.start(old, task)
    with pytest.raises(LeaseLost):
        await journal.finish(old, task, TaskStatus.DONE)
    with pytest.raises(LeaseLost):
        await queue.release(old)
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Ev1"]  # nothing of the old owner's landed
    assert await redis.hget(SPACE.task(THREAD, "Ev1"), "status") == TaskStatus.RUNNING.value
    assert await journal.finish(new, task, TaskStatus.DONE) is True


async def test_head_skips_a_corrupt_task_and_marks_it_failed(queue: TaskQueue, redis: Redis) -> None:
    """A task hash that does not parse is failed and skipped instead of blocking its thread."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2"))
    await redis.hset(SPACE.task(THREAD, "Ev1"), "kind", "nonsense")
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    assert await redis.hget(SPACE.task(THREAD, "Ev1"), "status") == "failed"
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Ev2"]


def test_thread_ref_rejects_values_that_would_break_keys() -> None:
    """Ids with the key separator are refused at the edge, and a bad encoded ref is a CorruptRecord."""
    with pytest.raises(ValueError, match="channel_id"):
        ThreadRef("T1", "C1:x", "1.0")
    for team in ("T{x}", "T}1", "T{"):  # a brace would make the keys' hash tag another one: CROSSSLOT on a cluster
        with pytest.raises(ValueError, match="team_id"):
            ThreadRef(team, "C1", "1.0")
    with pytest.raises(ValueError, match="thread_ts"):
        ThreadRef("T1", "C1", "{1.0}")
    with pytest.raises(CorruptRecord):
        ThreadRef.decode("T1:C1")


async def test_a_heartbeat_reports_entries_revoked_by_a_reset(queue: TaskQueue) -> None:
    """The worker of a thread that was reset learns it at its next heartbeat, and stops that work."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("EvOther", thread=OTHER))
    await queue.submit(make_task("EvElsewhere", thread=ELSEWHERE))
    leases = {lease.thread: lease for lease in await claim_all(queue)}
    lease, other, elsewhere = leases[THREAD], leases[OTHER], leases[ELSEWHERE]
    held = [lease.entry_id, other.entry_id]
    assert await queue.heartbeat("web.1", SHARD, held) == []
    assert await queue.heartbeat("web.1", elsewhere.shard, [elsewhere.entry_id]) == []
    await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert await queue.heartbeat("web.1", SHARD, held) == [lease.entry_id]
    assert await queue.heartbeat("web.1", elsewhere.shard, [elsewhere.entry_id]) == []


async def test_reset_cancels_the_threads_work_and_queues_the_reset_first(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Queued and running tasks are cancelled, the agent's keys go, and the old lease can write nothing more."""
    await queue.submit(make_task("Ev0"))
    await queue.submit(make_task("EvOther", thread=OTHER))
    old = await lease_on(queue)
    first = await queue.head(THREAD)
    assert first is not None
    await journal.finish(old, first, TaskStatus.DONE, turns=[Turn("user", "q")])  # an agent now; thread given back
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2"))
    old = await lease_on(queue)
    running = await queue.head(THREAD)
    assert running is not None and running.task_id == "Ev1"
    await journal.start(old, running)
    await journal.set_reply_ts(old, running, "1700000002.000100")
    await journal.set_reply_ts(old, running, "1700000003.000100", part=1)  # a long answer's second message
    await journal.record_step(old, running, {"kind": "model", "content": []})
    assert await redis.exists(SPACE.state(THREAD))

    result = await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert result.outcome is SubmitResult.ACCEPTED
    assert result.cancelled_replies == ["1700000002.000100", "1700000003.000100"]
    for task_id in ("Ev1", "Ev2"):
        assert await redis.hget(SPACE.task(THREAD, task_id), "status") == TaskStatus.CANCELLED.value
    assert not [name for name in await redis.hkeys(SPACE.task(THREAD, "Ev1")) if name.startswith(keys.STEP_FIELD)]
    assert not await redis.exists(SPACE.state(THREAD))
    assert await redis.zscore(SPACE.thread_channel_threads(THREAD), THREAD.thread_ts) is None
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Reset1"]
    with pytest.raises(LeaseLost):
        await journal.record_step(old, running, {"kind": "model", "content": []})
    with pytest.raises(LeaseLost):
        await journal.check_lease(old)
    # The reset runs under a fresh entry any worker can take; the other thread keeps its work.
    fresh = await lease_on(queue, consumer="web.2")
    assert fresh.entry_id != old.entry_id and await redis.get(SPACE.queued(THREAD)) == fresh.entry_id
    assert await redis.xlen(SPACE.thread_queue(THREAD)) == 2  # the reset's entry and OTHER's
    assert await redis.lrange(SPACE.inbox(OTHER), 0, -1) == ["EvOther"]
    cleanup = await journal.reset_cleanup(make_task("Reset1", TaskKind.RESET))
    assert cleanup is not None and cleanup.reply_ts == ["1700000002.000100", "1700000003.000100"]
    assert cleanup.unrecorded_task_ids == []

    again = await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert again.outcome is SubmitResult.DUPLICATE and await redis.llen(SPACE.inbox(THREAD)) == 1


async def test_reset_of_a_thread_without_work_leaves_no_key_without_a_ttl_but_the_entrys(
    queue: TaskQueue, redis: Redis
) -> None:
    """A reset of an idle thread queues its reset task; only the stream, the flag and the inbox have no TTL."""
    result = await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert result.outcome is SubmitResult.ACCEPTED and result.cancelled_replies == []
    unexpiring = {SPACE.queued(THREAD), SPACE.inbox(THREAD), *SPACE.queues()}
    for key in await redis.keys("*"):
        if key not in unexpiring:
            assert await redis.ttl(key) > 0, key
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Reset1"]


async def test_workers_are_alive_while_they_say_so(queue: TaskQueue, redis: Redis) -> None:
    """A worker is listed while it marks itself alive, until it stops or falls silent."""
    await queue.mark_alive("web.1")
    await queue.mark_alive("worker.1")
    await redis.zadd(keys.WORKERS, {"worker.2": time.time() - 30})  # silent for 30 s: presumed dead
    assert await queue.live_workers() == ["web.1", "worker.1"]
    assert 0 < await redis.ttl(keys.WORKERS) <= keys.WORKERS_TTL
    await queue.mark_stopped("web.1")
    assert await queue.live_workers() == ["worker.1"]
