"""The fence against a real Redis: takeovers, the one-GET lease check, and resets racing with intake."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from store import keys
from store.errors import LeaseLost
from store.journal import TaskJournal
from store.models import TaskKind, TaskStatus, Turn
from store.tasks import SubmitResult, TaskQueue, ThreadLease
from tests.unit.store.conftest import SPACE, THREAD, lease_on, make_groups, make_task

SHARD = SPACE.shard_of(THREAD)
QUEUE = SPACE.queue(SHARD)


async def step_fields(redis: Redis, task_id: str) -> list[str]:
    """The journal fields (step:N) of one of THREAD's tasks."""
    return [name for name in await redis.hkeys(SPACE.task(THREAD, task_id)) if name.startswith(keys.STEP_FIELD)]


async def test_a_taken_over_leases_first_write_fences_the_old_owner(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """START with taken_over names the new owner in the flag: from then on the old owner's record_step, finish and
    check_lease raise LeaseLost and write nothing, while the new owner works on."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(old, task)
    [new] = await queue.claim_stale("web.2", SHARD, min_idle_ms=0)
    assert new.taken_over and new.entry_id == old.entry_id
    task = await queue.head(THREAD)
    assert task is not None
    assert await journal.start(new, task) == 2
    assert await redis.get(SPACE.queued(THREAD)) == f"{new.entry_id} web.2"
    with pytest.raises(LeaseLost):
        await journal.record_step(old, task, {"kind": "model", "by": "old"})
    with pytest.raises(LeaseLost):
        await journal.finish(old, task, TaskStatus.DONE, turns=[Turn("user", "old")])
    with pytest.raises(LeaseLost):
        await journal.check_lease(old)
    assert await step_fields(redis, "Ev1") == [] and not await redis.exists(SPACE.state(THREAD))
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Ev1"]
    await journal.check_lease(new)
    await journal.record_step(new, task, {"kind": "model", "by": "new"})
    assert await journal.finish(new, task, TaskStatus.DONE, turns=[Turn("user", "new")]) is True
    assert journal.released(new)


async def test_the_old_owner_is_fenced_from_the_moment_of_the_takeover(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """The takeover itself names the taker in the flag: before the taker writes anything, the stalled owner's
    one-GET check and its writes are refused, so it can post nothing while the taker gets ready."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(old, task)
    [new] = await queue.claim_stale("web.2", SHARD, min_idle_ms=0)
    assert await redis.get(SPACE.queued(THREAD)) == f"{new.entry_id} web.2"
    with pytest.raises(LeaseLost):
        await journal.check_lease(old)
    with pytest.raises(LeaseLost):
        await journal.set_reply_ts(old, task, "1700000000.000900")
    assert await redis.hget(SPACE.task(THREAD, "Ev1"), "reply_ts") is None
    assert await queue.claim_stale("web.3", SHARD, min_idle_ms=60_000) == []  # renewed by the taking: not stale


async def test_a_second_takeover_fences_the_first_taker(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """An entry taken over twice: the flag names the latest taker once it writes, and the first taker is refused."""
    await queue.submit(make_task("Ev1"))
    await lease_on(queue)
    [first] = await queue.claim_stale("web.2", SHARD, min_idle_ms=0)
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(first, task)
    [second] = await queue.claim_stale("web.3", SHARD, min_idle_ms=0)
    task = await queue.head(THREAD)
    assert task is not None
    assert await journal.start(second, task) == 2
    assert await redis.get(SPACE.queued(THREAD)) == f"{second.entry_id} web.3"
    with pytest.raises(LeaseLost):
        await journal.set_reply_ts(first, task, "1700000002.000100")
    assert await redis.hget(SPACE.task(THREAD, "Ev1"), "reply_ts") is None


FLAG_CASES = {
    # flag value (ENTRY = the lease's entry, OTHER = another entry of the thread in the stream): holds, flag after
    "queued": ("ENTRY", True, "ENTRY"),
    "named": ("ENTRY web.1", True, "ENTRY web.1"),
    "taken over": ("ENTRY web.2", False, "ENTRY web.2"),
    "lost": (None, True, "ENTRY web.1"),
    "names a lost entry": ("0-1", True, "ENTRY web.1"),
    "names a second entry": ("OTHER", False, "OTHER"),
}


async def held_entry(queue: TaskQueue, redis: Redis, flag: str | None) -> tuple[ThreadLease, str]:
    """A thread held by web.1 whose flag is then set to `flag` (with ENTRY and OTHER filled in); a flag naming web.2
    follows web.2's takeover of the entry, as it does for real."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    if flag is not None and flag.endswith(" web.2"):
        assert await queue.claim_stale("web.2", SHARD, min_idle_ms=0)
    other = str(await redis.xadd(QUEUE, {"thread": THREAD.encode()}))
    if flag is None:
        await redis.delete(SPACE.queued(THREAD))
    else:
        await redis.set(SPACE.queued(THREAD), flag.replace("ENTRY", lease.entry_id).replace("OTHER", other))
    return lease, other


@pytest.mark.parametrize("case", list(FLAG_CASES))
async def test_the_one_get_lease_check_and_the_script_fence_agree(
    queue: TaskQueue, journal: TaskJournal, redis: Redis, case: str
) -> None:
    """For every state of the flag, check_lease (one GET when the flag names the lease) and a fenced write (always
    the script) both let the holder on, or both refuse it, and leave the same flag."""
    flag, holds, after = FLAG_CASES[case]
    outcomes = []
    for fenced_write in (False, True):
        await redis.flushdb()
        await make_groups(queue)
        lease, other = await held_entry(queue, redis, flag)
        task = make_task("Ev1")
        try:
            if fenced_write:
                await journal.set_reply_ts(lease, task, "1700000002.000100")
            else:
                await journal.check_lease(lease)
            held = True
        except LeaseLost:
            held = False
        expected_flag = after.replace("ENTRY", lease.entry_id).replace("OTHER", other)
        outcomes.append((held, await redis.get(SPACE.queued(THREAD)) == expected_flag))
    assert outcomes == [(holds, True), (holds, True)]


async def test_check_lease_restores_a_lost_flag_only_for_the_consumer_the_entry_is_pending_to(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A flag deleted by hand: a stranger's check is refused and restores nothing; the holder's restores the flag,
    naming itself, after which the cheap check passes, and a later mention joins that entry."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await redis.delete(SPACE.queued(THREAD))
    with pytest.raises(LeaseLost):
        await journal.check_lease(ThreadLease(lease.entry_id, THREAD, "web.9", SHARD))
    assert not await redis.exists(SPACE.queued(THREAD))
    await journal.check_lease(lease)
    assert await redis.get(SPACE.queued(THREAD)) == f"{lease.entry_id} web.1"
    await journal.check_lease(lease)
    await queue.submit(make_task("Ev2"))
    assert await redis.xlen(QUEUE) == 1


async def test_check_lease_refuses_an_entry_that_is_no_longer_pending(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A flag lost and the entry acknowledged meanwhile (given back): the check refuses and restores nothing."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await redis.delete(SPACE.queued(THREAD))
    await redis.xack(QUEUE, keys.WORKER_GROUP, lease.entry_id)
    with pytest.raises(LeaseLost):
        await journal.check_lease(lease)
    assert not await redis.exists(SPACE.queued(THREAD))


def racing_lrange(redis: Redis, monkeypatch: pytest.MonkeyPatch, push: int) -> list[dict[str, Any]]:
    """Make the first `push` inbox reads of a reset each see a new task arrive just after them (intake writing
    between the reset's read and its script); returns what the thread looked like at each read."""
    original = redis.lrange
    seen: list[dict[str, Any]] = []

    async def lrange(key: str, start: int, end: int) -> Any:
        result = await original(key, start, end)
        if key == SPACE.inbox(THREAD):
            seen.append(
                {
                    "inbox": await original(key, 0, -1),
                    "flag": await redis.get(SPACE.queued(THREAD)),
                    "state": await redis.exists(SPACE.state(THREAD)),
                    "statuses": [await redis.hget(SPACE.task(THREAD, t), "status") for t in ("Ev1", "Ev2")],
                }
            )
            if len(seen) <= push:
                await redis.rpush(SPACE.inbox(THREAD), f"Late{len(seen)}")
        return result

    monkeypatch.setattr(redis, "lrange", lrange)
    return seen


async def thread_with_an_agent_and_work(queue: TaskQueue, journal: TaskJournal) -> ThreadLease:
    """THREAD with an agent (one finished answer), then Ev1 running and Ev2 waiting, held by web.1."""
    await queue.submit(make_task("Ev0"))
    lease = await lease_on(queue)
    first = await queue.head(THREAD)
    assert first is not None
    await journal.finish(lease, first, TaskStatus.DONE, turns=[Turn("user", "q")])
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2"))
    lease = await lease_on(queue)
    running = await queue.head(THREAD)
    assert running is not None
    await journal.start(lease, running)
    return lease


async def test_a_reset_whose_inbox_changed_after_its_read_reads_again_and_resets_everything(
    queue: TaskQueue, journal: TaskJournal, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task arriving between the reset's inbox read and its script makes the script change nothing; the reset
    reads again and then cancels that task too, revokes the entry and starts the thread afresh."""
    old = await thread_with_an_agent_and_work(queue, journal)
    seen = racing_lrange(redis, monkeypatch, push=1)
    result = await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert result.outcome is SubmitResult.ACCEPTED
    assert len(seen) == 2
    assert seen[0]["inbox"] == ["Ev1", "Ev2"] and seen[1]["inbox"] == ["Ev1", "Ev2", "Late1"]
    assert seen[1] == {**seen[0], "inbox": seen[1]["inbox"]}  # the refused attempt changed nothing
    assert seen[1]["state"] == 1 and seen[1]["statuses"] == ["running", "queued"]
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Reset1"]
    for task_id in ("Ev1", "Ev2"):
        assert await redis.hget(SPACE.task(THREAD, task_id), "status") == TaskStatus.CANCELLED.value
    assert not await redis.exists(SPACE.state(THREAD))
    with pytest.raises(LeaseLost):
        await journal.check_lease(old)
    [(entry_id, _)] = await redis.xrange(QUEUE)
    assert await redis.get(SPACE.queued(THREAD)) == entry_id != old.entry_id


async def test_a_reset_whose_inbox_never_stops_changing_gives_up_and_changes_nothing(
    queue: TaskQueue, journal: TaskJournal, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reset that never reads the inbox as its script finds it gives up with an error rather than loop for ever,
    and leaves the thread as it was: never half reset."""
    old = await thread_with_an_agent_and_work(queue, journal)
    seen = racing_lrange(redis, monkeypatch, push=1000)
    with pytest.raises(RuntimeError, match="kept changing"):
        await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert len(seen) == 100
    assert not await redis.exists(SPACE.task(THREAD, "Reset1"))
    assert await redis.exists(SPACE.state(THREAD))
    assert [await redis.hget(SPACE.task(THREAD, t), "status") for t in ("Ev1", "Ev2")] == ["running", "queued"]
    assert await redis.get(SPACE.queued(THREAD)) == old.entry_id
    await journal.check_lease(old)
