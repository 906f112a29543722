"""TaskQueue against a real Redis when its records disagree or are bad: lost entries, lost flags, garbage, old names."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from store import keys
from store.errors import LeaseLost
from store.journal import TaskJournal
from store.models import TaskStatus
from store.tasks import TaskQueue
from tests.fakes import wait_until
from tests.unit.store.conftest import OTHER, THREAD, lease_on, make_task


async def test_a_submit_gives_a_thread_whose_entry_was_lost_a_new_one(queue: TaskQueue, redis: Redis) -> None:
    """The stream deleted under a queued thread: its next mention queues it again, with its earlier task first."""
    await queue.submit(make_task("Ev1"))
    await redis.delete(keys.QUEUE)
    await queue.ensure_group()  # as the runner does when it meets NOGROUP
    await queue.submit(make_task("Ev2"))
    lease = await lease_on(queue)
    assert await redis.get(keys.queued(THREAD)) == lease.entry_id
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev1"


async def test_recreating_the_group_requeues_threads_whose_flag_outlived_their_entry(
    queue: TaskQueue, redis: Redis
) -> None:
    """After the stream is lost, a thread with work gets a new entry at once; a flag without work is dropped."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("EvOther", thread=OTHER))
    await redis.delete(keys.inbox(OTHER), keys.QUEUE)
    await redis.set("agent:T1:thread:not-a-flag:queued", "1")  # matches the pattern, is not a thread's flag
    assert await queue.ensure_group() is True
    assert await queue.requeue_orphans() == 1
    assert [lease.thread for lease in await queue.claim_new("web.1", 10, None)] == [THREAD]
    assert not await redis.exists(keys.queued(OTHER))
    assert await queue.ensure_group() is False
    assert await queue.requeue_orphans() == 0  # a second worker doing the same changes nothing
    assert await redis.xlen(keys.QUEUE) == 1


async def test_a_submit_finds_the_entry_of_a_thread_whose_flag_was_lost_while_work_waited(
    queue: TaskQueue, redis: Redis
) -> None:
    """Work waiting in the inbox means the thread has an entry: a lost flag is set to it again, not to a second."""
    await queue.submit(make_task("Ev1"))
    [entry] = await redis.xrange(keys.QUEUE)
    await redis.delete(keys.queued(THREAD))
    await queue.submit(make_task("Ev2"))
    assert await redis.xlen(keys.QUEUE) == 1 and await redis.get(keys.queued(THREAD)) == entry[0]


async def test_of_two_entries_for_one_thread_only_the_flags_is_worked(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A flag lost after the inbox emptied but before the entry was released: the next mention's entry wins, and
    the old one's worker is fenced out and its entry dropped, so two workers never run one thread."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue, consumer="web.1")
    done = await queue.head(THREAD)
    assert done is not None
    await journal.finish(old, done, TaskStatus.DONE)
    await redis.delete(keys.queued(THREAD))
    await queue.submit(make_task("Ev2"))
    new = await lease_on(queue, consumer="web.2")
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    with pytest.raises(LeaseLost):
        await journal.start(old, task)
    assert await redis.xlen(keys.QUEUE) == 1
    assert await journal.start(new, task) == 1


async def test_the_worker_of_an_entry_whose_flag_was_lost_restores_it(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """The holder's next write puts the flag back, so a later mention joins the thread's entry instead of making
    a second one."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await redis.delete(keys.queued(THREAD))
    task = await queue.head(THREAD)
    assert task is not None
    assert await journal.start(lease, task) == 1
    assert await redis.get(keys.queued(THREAD)) == lease.entry_id
    await queue.submit(make_task("Ev2"))
    assert await redis.xlen(keys.QUEUE) == 1


async def test_entries_that_name_no_thread_are_dropped_with_a_warning(
    queue: TaskQueue, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage in the stream, new, pending to a restarted worker or left by a dead one, is acknowledged and deleted;
    the real work beside it is leased as usual."""
    await redis.xadd(keys.QUEUE, {"thread": "garbage"})
    await redis.xadd(keys.QUEUE, {"other": "field"})
    await queue.submit(make_task("Ev1"))
    with caplog.at_level(logging.WARNING, logger="store.tasks"):
        assert [lease.thread for lease in await queue.claim_new("web.1", 10, None)] == [THREAD]
        await redis.xadd(keys.QUEUE, {"thread": "T1:C1"})
        await redis.xreadgroup(keys.WORKER_GROUP, "web.2", {keys.QUEUE: ">"})  # then web.2 crashed
        assert await queue.claim_own_pending("web.2") == []
        await redis.xadd(keys.QUEUE, {"thread": "T1:C 1:1.0"})
        await redis.xreadgroup(keys.WORKER_GROUP, "web.3", {keys.QUEUE: ">"})  # web.3 died holding it
        assert await queue.claim_stale("web.1", min_idle_ms=0) != []  # only the thread's own entry, re-leased
    assert await redis.xlen(keys.QUEUE) == 1
    assert (await redis.xpending(keys.QUEUE, keys.WORKER_GROUP))["pending"] == 1
    assert len([r for r in caplog.records if "does not name a thread" in r.getMessage()]) == 4


async def test_consumers_long_idle_with_nothing_pending_are_removed(queue: TaskQueue, redis: Redis) -> None:
    """An idle consumer holding nothing goes; one holding an entry stays however idle, and so does a busy one."""
    await queue.submit(make_task("Ev1"))
    await queue.claim_new("holder", 10, None)
    await redis.xgroup_createconsumer(keys.QUEUE, keys.WORKER_GROUP, "gone")  # a worker that read and finished

    async def idle_ms() -> dict[str, int]:
        return {c["name"]: c["idle"] for c in await redis.xinfo_consumers(keys.QUEUE, keys.WORKER_GROUP)}

    async def both_idle() -> bool:
        return all(idle > 300 for idle in (await idle_ms()).values())

    await wait_until(both_idle, timeout=5)
    await redis.xgroup_createconsumer(keys.QUEUE, keys.WORKER_GROUP, "busy")  # just now: far from 300 ms idle
    assert await queue.prune_consumers(min_idle_ms=300) == ["gone"]
    assert sorted(await idle_ms()) == ["busy", "holder"]
