"""The timers benchmark's measures: each fired timer's lateness once, and what its threads' inboxes hold."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from benchmarks.timers import TimedSchedules, make_timers, tasks_queued
from store.keys import KeySpace
from store.schedules import ScheduleLimits

SPACE = KeySpace()


async def test_each_fired_timer_is_measured_once_and_its_task_counted(redis: Redis) -> None:
    """Timers made due at once fire at the first look: one lateness measured for each, and one task each."""
    store = TimedSchedules(redis, SPACE, ScheduleLimits(per_channel=1000))
    await make_timers(store, time.time() - 1.0, 0.0, count=30)
    for shard in range(SPACE.shards):
        await store.fire(shard, await store.due(shard, time.time(), 100), time.time())
    assert sum(store.fired_ids.values()) == 30 and max(store.fired_ids.values()) == 1
    assert len(store.lateness) == 30 and all(0 <= late < 10 for late in store.lateness)
    assert await tasks_queued(redis, SPACE) == 30
