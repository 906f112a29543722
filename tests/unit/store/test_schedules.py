"""Durable timers against a real Redis: limits, listing, cancelling, and firing exactly once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from store.errors import LeaseLost
from store.models import Task, TaskKind, ThreadRef
from store.schedules import (
    ScheduleLimits,
    ScheduleRefused,
    ScheduleSpec,
    ScheduleStore,
    run_task_id,
    schedule_of_task,
)
from store.tasks import SubmitResult, TaskQueue
from tests.unit.store.conftest import ELSEWHERE, OTHER, SPACE, THREAD, lease_on, make_task

NOW = 1_800_000_000.0
MINUTE = 60.0
SHARD = SPACE.shard_of(THREAD)


@pytest.fixture
def schedules(redis: Redis) -> ScheduleStore:
    """A schedule store with small limits."""
    return ScheduleStore(redis, SPACE, ScheduleLimits(per_thread=3, per_channel=4, min_interval=300, max_failures=2))


def once(at: float, thread: ThreadRef = THREAD, note: str = "check the deploy") -> ScheduleSpec:
    """A one-off follow-up."""
    return ScheduleSpec(thread, at, note, "U1")


def every(seconds: float, at: float = NOW + 600, **end: object) -> ScheduleSpec:
    """A recurring follow-up."""
    return ScheduleSpec(THREAD, at, "look again", "U1", every=seconds, **end)  # type: ignore[arg-type]


async def fire_all(schedules: ScheduleStore, now: float, shard: int = SHARD) -> tuple[int, int]:
    """What one pass of a timer loop does for a shard."""
    return await schedules.fire(shard, await schedules.due(shard, now, 100), now)


async def runs_done(redis: Redis, thread: ThreadRef = THREAD) -> list[str]:
    """The ids of the runs waiting in the thread's inbox, which then leave it, as runs that finished would: a
    recurring schedule's next run is queued only once the one before has."""
    done = [str(task_id) for task_id in await redis.lrange(SPACE.inbox(thread), 0, -1)]
    await redis.delete(SPACE.inbox(thread))
    return done


async def inbox_tasks(redis: Redis, thread: ThreadRef = THREAD) -> list[Task]:
    """The tasks waiting in the thread's inbox."""
    found = []
    for task_id in await redis.lrange(SPACE.inbox(thread), 0, -1):
        found.append(Task.from_fields(await redis.hgetall(SPACE.task(thread, task_id))))
    return found


async def test_a_due_timer_queues_one_scheduled_task_with_its_note(
    schedules: ScheduleStore, queue: TaskQueue, redis: Redis
) -> None:
    """A once timer fires at its time: a SCHEDULED task carrying its note and its creator is queued like a mention
    (inbox, queue entry), and the schedule is gone."""
    made = await schedules.create(once(NOW + 30 * MINUTE), NOW)
    assert await fire_all(schedules, NOW + 29 * MINUTE) == (0, 0)
    assert await fire_all(schedules, NOW + 30 * MINUTE) == (1, 0)
    [task] = await inbox_tasks(redis)
    assert task.kind is TaskKind.SCHEDULED and task.text == "check the deploy" and task.user_id == "U1"
    assert task.task_id == run_task_id(made.schedule_id, NOW + 30 * MINUTE)
    assert schedule_of_task(task.task_id) == made.schedule_id
    assert (await lease_on(queue)).thread == THREAD
    assert await schedules.list_thread(THREAD) == []
    assert await redis.zcard(SPACE.timers(SHARD)) == 0


async def test_a_scheduled_task_waits_behind_the_threads_earlier_work(
    schedules: ScheduleStore, queue: TaskQueue, redis: Redis
) -> None:
    """A timer that fires while a mention waits goes after it in the same inbox, under the thread's one entry."""
    await queue.submit(make_task("Ev1"))
    await schedules.create(once(NOW), NOW)
    await fire_all(schedules, NOW)
    assert [task.kind for task in await inbox_tasks(redis)] == [TaskKind.ANSWER, TaskKind.SCHEDULED]
    assert await redis.xlen(SPACE.queue(SHARD)) == 1


async def test_two_workers_firing_one_shard_fire_each_timer_once(
    schedules: ScheduleStore, queue: TaskQueue, redis: Redis
) -> None:
    """Workers that read the same due timers and fire them at once queue one task per run between them."""
    for minute in range(5):
        await schedules.create(once(NOW + minute * MINUTE, thread=ThreadRef("T1", f"C{minute}", f"17.{minute}")), NOW)
    later = NOW + 10 * MINUTE
    by_shard: dict[int, list[object]] = {}
    for shard in range(SPACE.shards):
        due = await schedules.due(shard, later, 100)
        if due:
            by_shard[shard] = due
    results = await asyncio.gather(
        *(schedules.fire(shard, due, later) for shard, due in by_shard.items() for _ in range(2))  # type: ignore[arg-type]
    )
    assert sum(fired for fired, _ in results) == 5
    assert sum(skipped for _, skipped in results) == 5


async def test_firing_a_run_again_queues_nothing_more(schedules: ScheduleStore, redis: Redis, queue: TaskQueue) -> None:
    """The same due entries fired twice (a retry after a lost reply) give one task: the second finds them moved on."""
    await schedules.create(every(600, at=NOW), NOW)
    due = await schedules.due(SHARD, NOW, 100)
    assert await schedules.fire(SHARD, due, NOW) == (1, 0)
    assert await schedules.fire(SHARD, due, NOW + 1) == (0, 1)
    assert len(await inbox_tasks(redis)) == 1


async def test_a_recurring_timer_missed_in_downtime_fires_once_then_keeps_its_phase(
    schedules: ScheduleStore, redis: Redis, queue: TaskQueue
) -> None:
    """Every 10 minutes from NOW, with the workers down for 35 minutes: one run on start, the next at NOW + 40 min."""
    made = await schedules.create(every(600, at=NOW), NOW)
    assert await fire_all(schedules, NOW + 35 * MINUTE) == (1, 0)
    assert await fire_all(schedules, NOW + 36 * MINUTE) == (0, 0)
    [left] = await schedules.list_thread(THREAD)
    assert left.next_at == NOW + 40 * MINUTE and left.fired == 1
    assert await runs_done(redis) == [run_task_id(made.schedule_id, NOW)]
    assert await fire_all(schedules, NOW + 40 * MINUTE) == (1, 0)
    assert await runs_done(redis) == [run_task_id(made.schedule_id, NOW + 40 * MINUTE)]


async def test_a_recurring_timer_ends_after_its_count_or_at_its_end(
    schedules: ScheduleStore, redis: Redis, queue: TaskQueue
) -> None:
    """`count` runs it at most that many times; `until` stops it once its next run would be past the end."""
    await schedules.create(every(600, at=NOW, count=2), NOW)
    await schedules.create(every(600, at=NOW, until=NOW + 900), NOW)
    assert await fire_all(schedules, NOW) == (2, 0)
    await runs_done(redis)
    assert await fire_all(schedules, NOW + 600) == (2, 0)
    assert await schedules.list_thread(THREAD) == []
    assert await fire_all(schedules, NOW + 1200) == (0, 0)


async def test_the_limits_refuse_with_a_clear_message(schedules: ScheduleStore) -> None:
    """Too frequent, a thread or a channel full: refused, saying the limit; the channel counts every shard."""
    with pytest.raises(ScheduleRefused, match="at most every 5 minutes, not every minute"):
        await schedules.create(every(60), NOW)
    for _ in range(3):
        await schedules.create(once(NOW + 600), NOW)
    with pytest.raises(ScheduleRefused, match=r"thread already has 3 active schedules.*\(3\)"):
        await schedules.create(once(NOW + 600), NOW)
    await schedules.create(once(NOW + 600, thread=ELSEWHERE), NOW)
    with pytest.raises(ScheduleRefused, match=r"channel already has 4 active schedules"):
        await schedules.create(once(NOW + 600, thread=OTHER), NOW)
    with pytest.raises(ScheduleRefused, match="at most 30 days from now"):
        await schedules.create(once(NOW + 31 * 86400, thread=ThreadRef("T1", "C2", "1.2")), NOW)


async def test_cancelling_frees_the_slot_and_the_timer(schedules: ScheduleStore, redis: Redis) -> None:
    """A cancelled schedule never fires, no longer counts, and is listed nowhere."""
    made = await schedules.create(once(NOW + 600), NOW)
    await schedules.create(once(NOW + 600, thread=ELSEWHERE), NOW)
    assert [s.schedule_id for s in await schedules.list_channel("T1", "C1")] != []
    assert await schedules.cancel(THREAD, made.schedule_id)
    assert not await schedules.cancel(THREAD, made.schedule_id)
    assert await fire_all(schedules, NOW + 600) == (0, 0)
    assert [s.thread for s in await schedules.list_channel("T1", "C1")] == [ELSEWHERE]


async def test_cancel_thread_cancels_all_of_the_thread_only(schedules: ScheduleStore, redis: Redis) -> None:
    """What a reset and Stop call: every schedule of the thread goes, other threads' stay."""
    await schedules.create(once(NOW + 600), NOW)
    await schedules.create(every(600), NOW)
    await schedules.create(once(NOW + 600, thread=OTHER), NOW)
    assert await schedules.cancel_thread(THREAD) == 2
    assert await schedules.list_thread(THREAD) == []
    assert len(await schedules.list_thread(OTHER)) == 1
    assert await redis.zcard(SPACE.timers(SHARD)) == 1


async def test_a_fenced_create_is_refused_once_the_thread_was_reset(schedules: ScheduleStore, queue: TaskQueue) -> None:
    """A run whose thread was reset (its lease revoked) schedules nothing; the current holder may."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await schedules.create(once(NOW + 600), NOW, lease)
    assert (await queue.reset(make_task("Ev2", TaskKind.RESET))).outcome is SubmitResult.ACCEPTED
    with pytest.raises(LeaseLost):
        await schedules.create(once(NOW + 600), NOW, lease)
    assert len(await schedules.list_thread(THREAD)) == 1


async def test_failing_runs_in_a_row_pause_a_recurring_schedule(schedules: ScheduleStore, redis: Redis) -> None:
    """Two failed runs in a row (the limit here) pause it: out of the due index until resumed; a success in between
    starts the count again, and a run recorded twice counts once."""
    made = await schedules.create(every(600, at=NOW), NOW)
    sid = made.schedule_id
    assert not await schedules.record_outcome(THREAD, sid, "sched-a", ok=False)
    assert not await schedules.record_outcome(THREAD, sid, "sched-a", ok=False)
    assert not await schedules.record_outcome(THREAD, sid, "sched-b", ok=True)
    assert not await schedules.record_outcome(THREAD, sid, "sched-c", ok=False)
    assert await schedules.record_outcome(THREAD, sid, "sched-d", ok=False)
    [paused] = await schedules.list_thread(THREAD)
    assert paused.paused and paused.failures == 2
    assert await fire_all(schedules, NOW + 3600) == (0, 0)
    assert await schedules.resume(THREAD, sid, NOW + 3601)
    [resumed] = await schedules.list_thread(THREAD)
    assert not resumed.paused and resumed.next_at == NOW + 4200


async def test_a_schedule_expires_with_its_lifetime(schedules: ScheduleStore, redis: Redis) -> None:
    """Every key a schedule adds has a TTL (the due index, shared by every team, is the documented exception)."""
    made = await schedules.create(every(600), NOW)
    for key in (
        SPACE.schedule(THREAD, made.schedule_id),
        SPACE.thread_schedules(THREAD),
        SPACE.channel_schedules("T1", "C1", SHARD),
    ):
        assert await redis.pttl(key) > 0, key


async def test_cancel_channel_cancels_every_thread_of_the_channel_in_every_shard(
    schedules: ScheduleStore, redis: Redis
) -> None:
    """What a channel reset calls: the channel's schedules go, whatever their shard; another channel's stay."""
    await schedules.create(once(NOW + 600), NOW)
    await schedules.create(once(NOW + 600, thread=ELSEWHERE), NOW)
    await schedules.create(once(NOW + 600, thread=ThreadRef("T1", "C2", "1.2")), NOW)
    assert await schedules.cancel_channel("T1", "C1") == 2
    assert await schedules.list_channel("T1", "C1") == []
    assert len(await schedules.list_channel("T1", "C2")) == 1


async def test_renewing_moves_a_recurring_schedules_lifetime_cap_on(redis: Redis) -> None:
    """A recurring schedule stops at its lifetime cap unless renewed; renewed, it runs on (to its own end at most)."""
    store = ScheduleStore(redis, SPACE, ScheduleLimits(min_interval=300, max_lifetime=3600))
    made = await store.create(every(600, at=NOW + 600), NOW)
    assert made.ends_at == NOW + 3600
    renewed = await store.renew(THREAD, made.schedule_id, NOW + 1800)
    assert renewed is not None and renewed.ends_at == NOW + 5400
    assert await redis.pexpiretime(SPACE.schedule(THREAD, made.schedule_id)) > (NOW + 5400) * 1000
    bounded = await store.create(every(600, at=NOW + 600, until=NOW + 4000), NOW)
    again = await store.renew(THREAD, bounded.schedule_id, NOW + 1800)
    assert again is not None and again.ends_at == NOW + 4000
    assert await store.renew(THREAD, "gone", NOW) is None


async def test_a_schedule_of_another_thread_of_the_shard_is_neither_cancelled_nor_resumed(
    schedules: ScheduleStore, redis: Redis
) -> None:
    """A schedule's key names its shard, not its thread: cancelling or resuming by id from another thread of the same
    shard must leave it alone."""
    mine = await schedules.create(once(NOW + MINUTE), NOW)
    assert SPACE.shard_of(OTHER) == SHARD  # OTHER: another thread of the same shard
    assert not await schedules.cancel(OTHER, mine.schedule_id)
    assert not await schedules.resume(OTHER, mine.schedule_id, NOW)
    assert await schedules.get(THREAD, mine.schedule_id) is not None
    assert await schedules.cancel(THREAD, mine.schedule_id)


async def test_a_busy_thread_gets_no_run_per_period_it_was_busy(schedules: ScheduleStore, redis: Redis) -> None:
    """While a recurring schedule's run still waits (or runs) in the thread's inbox, its next periods queue nothing:
    a thread stuck for an hour on a 10-minute schedule runs once when it frees up, not six times."""
    made = await schedules.create(every(600, at=NOW), NOW)
    for minutes in (0, 10, 20, 30):
        await fire_all(schedules, NOW + minutes * MINUTE)
    assert len(await inbox_tasks(redis)) == 1
    stored = await schedules.get(THREAD, made.schedule_id)
    assert stored is not None and stored.fired == 1 and stored.next_at == NOW + 40 * MINUTE
    assert not await schedules.ends_its_schedule(THREAD, (await inbox_tasks(redis))[0].task_id)


async def test_a_run_knows_whether_it_was_its_schedules_last(schedules: ScheduleStore, redis: Redis) -> None:
    """A one-off's run ends its schedule (it finds it gone and still runs); a recurring one's does not (gone, it was
    cancelled after it was queued)."""
    await schedules.create(once(NOW), NOW)
    await fire_all(schedules, NOW)
    [last] = await inbox_tasks(redis)
    assert await schedules.ends_its_schedule(THREAD, last.task_id)


async def test_failing_runs_pause_a_cron_schedule_too(schedules: ScheduleStore, redis: Redis) -> None:
    """Any recurring schedule pauses after its failures in a row, a cron one as well as an interval."""
    made = await schedules.create(ScheduleSpec(THREAD, NOW, "look again", "U1", cron="*/10 * * * *", tz="UTC"), NOW)
    assert not await schedules.record_outcome(THREAD, made.schedule_id, "sched-a", ok=False)
    assert await schedules.record_outcome(THREAD, made.schedule_id, "sched-b", ok=False)
    stored = await schedules.get(THREAD, made.schedule_id)
    assert stored is not None and stored.paused
