"""TaskQueue against a real Redis when its records disagree or are bad: lost entries, lost flags, garbage."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from store import keys
from store.errors import LeaseLost
from store.journal import TaskJournal
from store.models import TaskStatus
from store.tasks import TaskQueue, ThreadLease
from tests.fakes import wait_until
from tests.unit.store.conftest import ELSEWHERE, OTHER, SPACE, THREAD, claim_all, lease_on, make_task

SHARD = SPACE.shard_of(THREAD)
QUEUE = SPACE.queue(SHARD)


async def test_work_submitted_while_the_stream_was_lost_is_requeued_with_its_earlier_task_first(
    queue: TaskQueue, redis: Redis
) -> None:
    """The stream deleted under a queued thread, and a mention joins its inbox meanwhile: the submit sees that the
    entry its flag names is gone and makes a new one, and once a worker makes the group again the thread has that
    one entry, its earlier task first (nothing is left for the requeue)."""
    await queue.submit(make_task("Ev1"))
    await redis.delete(QUEUE)
    await queue.submit(make_task("Ev2"))
    assert await redis.xlen(QUEUE) == 1
    assert await queue.ensure_group(SHARD) is True  # as the runner does when it meets NOGROUP
    assert await queue.requeue_orphans(SHARD) == 0
    lease = await lease_on(queue)
    assert await redis.get(SPACE.queued(THREAD)) == lease.entry_id and await redis.xlen(QUEUE) == 1
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev1"


async def test_a_worker_that_dies_during_the_requeue_leaves_it_to_the_next(queue: TaskQueue, redis: Redis) -> None:
    """The shard stays marked as owing a requeue until one has seen every flag: a worker that made the group and
    died before requeueing leaves the work to the next worker's start, and the thread is not stranded."""
    await queue.submit(make_task("Ev1"))
    await redis.delete(QUEUE)
    assert await queue.ensure_group(SHARD) is True  # then that worker died before requeue_orphans
    assert await queue.ensure_group(SHARD) is True  # the group exists now, but the shard still owes its requeue
    assert await queue.requeue_orphans(SHARD) == 1
    assert await queue.ensure_group(SHARD) is False
    assert (await lease_on(queue)).thread == THREAD


async def test_recreating_the_group_requeues_threads_whose_flag_outlived_their_entry(
    queue: TaskQueue, redis: Redis
) -> None:
    """After a shard's stream is lost, a thread with work gets a new entry at once; a flag without work is dropped;
    other shards are not touched."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("EvOther", thread=OTHER))
    await queue.submit(make_task("EvElsewhere", thread=ELSEWHERE))
    await redis.delete(SPACE.inbox(OTHER), QUEUE)
    # Matches the shard's flag pattern, but names no thread (a key of another shape), so nothing is requeued for it.
    look_alike = SPACE.queued(THREAD).replace(f":{THREAD.channel_id}:{THREAD.thread_ts}:", ":not-a-flag:")
    await redis.set(look_alike, "1")
    assert await queue.ensure_group(SHARD) is True
    assert await queue.requeue_orphans(SHARD) == 1
    assert sorted(lease.thread.thread_ts for lease in await claim_all(queue)) == sorted(
        [THREAD.thread_ts, ELSEWHERE.thread_ts]
    )
    assert not await redis.exists(SPACE.queued(OTHER))
    assert await redis.get(look_alike) == "1"
    assert await queue.ensure_group(SHARD) is False
    assert await queue.requeue_orphans(SHARD) == 0  # a second worker doing the same changes nothing
    assert await redis.xlen(QUEUE) == 1


async def test_a_lost_flag_while_work_waits_gets_a_new_entry_and_the_old_ones_worker_is_fenced_out(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A submit that finds work waiting but no flag cannot know the thread's entry: it makes a new one and the
    flag names it; the old entry's worker is refused its first write and that entry dropped, so one worker runs
    the thread, from its earliest task."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue, consumer="web.1")
    await redis.delete(SPACE.queued(THREAD))
    await queue.submit(make_task("Ev2"))
    new = await lease_on(queue, consumer="web.2")
    assert await redis.get(SPACE.queued(THREAD)) == new.entry_id != old.entry_id
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev1"
    with pytest.raises(LeaseLost):
        await journal.start(old, task)
    assert [entry for entry, _ in await redis.xrange(QUEUE)] == [new.entry_id]
    assert await journal.start(new, task) == 1


async def test_of_two_entries_for_one_thread_only_the_flags_is_worked(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """An inbox emptied by the head read (its task expired) before the worker gave the thread back: the next
    mention's entry wins, and the old one's worker is fenced out and its entry dropped, so two workers never run
    one thread."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue, consumer="web.1")
    await redis.delete(SPACE.task(THREAD, "Ev1"))
    assert await queue.head(THREAD) is None  # drops the expired task's id: the inbox is empty, the entry held
    await queue.submit(make_task("Ev2"))
    new = await lease_on(queue, consumer="web.2")
    assert new.entry_id != old.entry_id
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    with pytest.raises(LeaseLost):
        await queue.release(old)
    with pytest.raises(LeaseLost):
        await journal.start(old, task)
    assert [entry_id for entry_id, _ in await redis.xrange(QUEUE)] == [new.entry_id]
    assert await journal.start(new, task) == 1


async def test_the_worker_of_an_entry_whose_flag_was_lost_restores_it(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """The holder's next write puts the flag back (naming itself), so a later mention joins the thread's entry
    instead of making a second one, and a stranger's write is still refused."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await redis.delete(SPACE.queued(THREAD))
    task = await queue.head(THREAD)
    assert task is not None
    assert await journal.start(lease, task) == 1
    assert await redis.get(SPACE.queued(THREAD)) == f"{lease.entry_id} web.1"
    await queue.submit(make_task("Ev2"))
    assert await redis.xlen(QUEUE) == 1
    stranger = ThreadLease(lease.entry_id, THREAD, "web.9", SHARD)  # the entry is not pending to it
    with pytest.raises(LeaseLost):
        await journal.record_step(stranger, task, {"kind": "model"})
    await journal.record_step(lease, task, {"kind": "model"})


async def test_entries_that_name_no_thread_of_their_shard_are_dropped_with_a_warning(
    queue: TaskQueue, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage in a stream, new, pending to a restarted worker or left by a dead one, and entries naming a thread
    of another shard, are acknowledged and deleted; the real work beside them is leased as usual."""
    assert SPACE.shard_of(ELSEWHERE) != SHARD
    await redis.xadd(QUEUE, {"thread": "garbage"})
    await redis.xadd(QUEUE, {"other": "field"})
    await redis.xadd(QUEUE, {"thread": ELSEWHERE.encode()})  # a valid thread, but of another shard
    await queue.submit(make_task("Ev1"))
    with caplog.at_level(logging.WARNING, logger="store.tasks"):
        assert [lease.thread for lease in await queue.claim_new("web.1", [SHARD], 10, None)] == [THREAD]
        await redis.xadd(QUEUE, {"thread": "T1:C1"})
        await redis.xreadgroup(keys.WORKER_GROUP, "web.2", {QUEUE: ">"})  # then web.2 crashed
        assert await queue.claim_own_pending("web.2", SHARD) == []
        await redis.xadd(QUEUE, {"thread": "T1:C 1:1.0"})
        await redis.xreadgroup(keys.WORKER_GROUP, "web.3", {QUEUE: ">"})  # web.3 died holding it
        assert await queue.claim_stale("web.1", SHARD, min_idle_ms=0) != []  # only the thread's own entry, re-leased
    assert await redis.xlen(QUEUE) == 1
    assert (await redis.xpending(QUEUE, keys.WORKER_GROUP))["pending"] == 1
    assert len([r for r in caplog.records if "does not name a thread" in r.getMessage()]) == 5


async def test_consumers_long_idle_with_nothing_pending_are_removed(queue: TaskQueue, redis: Redis) -> None:
    """An idle consumer holding nothing goes; one holding an entry stays however idle, and so does a busy one."""
    await queue.submit(make_task("Ev1"))
    await queue.claim_new("holder", [SHARD], 10, None)
    await redis.xgroup_createconsumer(QUEUE, keys.WORKER_GROUP, "gone")  # a worker that read and finished

    async def idle_ms() -> dict[str, int]:
        return {c["name"]: c["idle"] for c in await redis.xinfo_consumers(QUEUE, keys.WORKER_GROUP)}

    async def both_idle() -> bool:
        return all(idle > 300 for idle in (await idle_ms()).values())

    await wait_until(both_idle, timeout=5)
    await redis.xgroup_createconsumer(QUEUE, keys.WORKER_GROUP, "busy")  # just now: far from 300 ms idle
    assert await queue.prune_consumers(SHARD, min_idle_ms=300) == ["gone"]
    assert sorted(await idle_ms()) == ["busy", "holder"]


async def test_finishing_the_task_of_a_restored_flag_releases_the_thread(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A flag restored by its holder (naming it) is released like any other with the thread's last task."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await redis.delete(SPACE.queued(THREAD))
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(lease, task)
    assert await journal.finish(lease, task, TaskStatus.DONE) is True and journal.released(lease)
    assert not await redis.exists(SPACE.queued(THREAD)) and await redis.xlen(QUEUE) == 0
