"""Cron schedules against a real Redis: run times in the person's zone (daylight saving time included), the next one
after now fired once, downtime, a list that runs out and is topped up, ends, and the minimum interval."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from store import schedules_cron
from store.schedules import ScheduleLimits, ScheduleRefused, ScheduleSpec, ScheduleStore, run_task_id
from store.tasks import TaskQueue
from tests.unit.store.conftest import SPACE, THREAD
from tests.unit.store.test_schedules import fire_all, inbox_tasks, runs_done

NEW_YORK = ZoneInfo("America/New_York")
# Friday 2027-03-12 12:00 in New York (EST, UTC-5); its clocks go forward on Sunday 2027-03-14 at 02:00.
NOW = datetime(2027, 3, 12, 12, 0, tzinfo=NEW_YORK).timestamp()
HOUR = 3600.0


def ny(day: int, hour: int, minute: int = 0) -> float:
    """A wall-clock time of March 2027 in New York."""
    return datetime(2027, 3, day, hour, minute, tzinfo=NEW_YORK).timestamp()


@pytest.fixture
def schedules(redis: Redis) -> ScheduleStore:
    """A schedule store with a 5-minute minimum interval."""
    return ScheduleStore(redis, SPACE, ScheduleLimits(per_thread=5, per_channel=10, min_interval=300))


def cron(expression: str, **more: object) -> ScheduleSpec:
    """A cron schedule made by someone in New York."""
    return ScheduleSpec(THREAD, NOW, "post the summary", "U1", cron=expression, tz="America/New_York", **more)  # type: ignore[arg-type]


def test_run_times_keep_the_wall_clock_across_daylight_saving_time() -> None:
    """09:00 every day stays 09:00 in New York when its clocks go forward (UTC 14:00, then 13:00)."""
    runs = schedules_cron.next_runs("0 9 * * *", "America/New_York", NOW, 4)
    assert runs == [ny(13, 9), ny(14, 9), ny(15, 9), ny(16, 9)]
    assert [datetime.fromtimestamp(at, ZoneInfo("UTC")).hour for at in runs] == [14, 13, 13, 13]


def test_bad_and_never_running_expressions_are_refused() -> None:
    """Wrong field counts (a seconds field too), bad fields, unknown zones and a date that never comes."""
    for expression in ("0 9 * *", "0 0 9 * * *", "61 9 * * *", "0 9 31 2 *"):
        with pytest.raises(ScheduleRefused):
            schedules_cron.next_runs(expression, "UTC", NOW)
    with pytest.raises(ScheduleRefused, match="time zone"):
        schedules_cron.next_runs("0 9 * * *", "Mars/Olympus", NOW)


async def test_a_cron_schedule_fires_at_its_times_in_the_persons_zone(
    schedules: ScheduleStore, redis: Redis, queue: TaskQueue
) -> None:
    """Weekdays at 09:00 New York time: nothing on the weekend, then Monday 09:00 (EDT by then), then Tuesday."""
    made = await schedules.create(cron("0 9 * * 1-5"), NOW)
    assert made.kind == "cron" and made.next_at == ny(15, 9) and made.tz == "America/New_York"
    assert await fire_all(schedules, ny(15, 8, 59)) == (0, 0)
    assert await fire_all(schedules, ny(15, 9)) == (1, 0)
    [left] = await schedules.list_thread(THREAD)
    assert left.next_at == ny(16, 9) and left.fired == 1 and left.cron == "0 9 * * 1-5"
    [task] = await inbox_tasks(redis)
    assert task.task_id == run_task_id(made.schedule_id, ny(15, 9))


async def test_a_cron_schedule_missed_in_downtime_fires_once_then_runs_at_its_next_time(
    schedules: ScheduleStore, redis: Redis, queue: TaskQueue
) -> None:
    """Hourly, with the workers down for five hours: one run on start, the next at the first hour after now."""
    await schedules.create(cron("0 * * * *"), NOW)
    assert await fire_all(schedules, NOW + 5.5 * HOUR) == (1, 0)
    assert await fire_all(schedules, NOW + 5.6 * HOUR) == (0, 0)
    [left] = await schedules.list_thread(THREAD)
    assert left.next_at == NOW + 6 * HOUR and left.fired == 1
    assert len(await inbox_tasks(redis)) == 1


async def test_a_cron_schedule_whose_run_times_ran_out_waits_for_its_run_to_top_them_up(
    schedules: ScheduleStore, redis: Redis, queue: TaskQueue
) -> None:
    """Down for longer than its listed runs (20 hours of an hourly one): it fires once, leaves the due index, and
    its run's refill puts it back at the first hour after now; refilling again changes nothing."""
    made = await schedules.create(cron("0 * * * *"), NOW)
    later = NOW + 30.5 * HOUR
    assert await fire_all(schedules, later) == (1, 0)
    assert await redis.zcard(SPACE.timers(SPACE.shard_of(THREAD))) == 0
    assert await fire_all(schedules, later + HOUR) == (0, 0)
    assert await schedules.refill_cron(THREAD, made.schedule_id, later)
    assert await schedules.refill_cron(THREAD, made.schedule_id, later)
    [left] = await schedules.list_thread(THREAD)
    assert left.next_at == NOW + 31 * HOUR
    assert len(await runs_done(redis)) == 1
    assert await fire_all(schedules, NOW + 31 * HOUR) == (1, 0)
    assert len(await inbox_tasks(redis)) == 1


async def test_a_cron_schedule_ends_after_its_count(schedules: ScheduleStore, redis: Redis, queue: TaskQueue) -> None:
    """count=2: two runs, then it is gone."""
    await schedules.create(cron("0 * * * *", count=2), NOW)
    assert await fire_all(schedules, NOW + HOUR) == (1, 0)
    await runs_done(redis)
    assert await fire_all(schedules, NOW + 2 * HOUR) == (1, 0)
    assert await schedules.list_thread(THREAD) == []


async def test_the_minimum_interval_applies_to_the_gaps_between_cron_runs(schedules: ScheduleStore) -> None:
    """Every minute, or two runs a minute apart each day, are refused; every five minutes is allowed."""
    for expression in ("* * * * *", "0,1 9 * * *"):
        with pytest.raises(ScheduleRefused, match="at most every 5 minutes"):
            await schedules.create(cron(expression), NOW)
    await schedules.create(cron("*/5 * * * *"), NOW)


async def test_a_create_run_again_with_its_id_returns_the_schedule_it_made(schedules: ScheduleStore) -> None:
    """The same schedule_id twice (a tool call run again after a crash): one schedule."""
    first = await schedules.create(cron("0 9 * * *"), NOW, schedule_id="abc123")
    again = await schedules.create(cron("0 9 * * *"), NOW + 60, schedule_id="abc123")
    assert again == first and len(await schedules.list_thread(THREAD)) == 1
