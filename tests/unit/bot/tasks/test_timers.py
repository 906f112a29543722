"""The timer loop's looks, on a clock the test sets: when it wakes, which shards it reads, and what it fires."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from bot.tasks.timers import MIN_GAP, TimerLoop, TimerSettings
from store.keys import KeySpace
from store.models import ThreadRef
from store.schedules import ScheduleLimits, ScheduleSpec, ScheduleStore

NOW = 1_800_000_000.0
SPACE = KeySpace(4)
THREAD = ThreadRef("T1", "C1", "1700000000.000100")


class SetClock:
    """A clock that says what the test sets."""

    def __init__(self, now: float) -> None:
        self.time = now

    def now(self) -> float:
        """The time the test set."""
        return self.time


@pytest.fixture
def store(redis: Redis) -> ScheduleStore:
    """Schedules in four shards."""
    return ScheduleStore(redis, SPACE, ScheduleLimits())


async def test_an_idle_loop_looks_once_a_poll(store: ScheduleStore) -> None:
    """With no timer due within the poll, every shard is read once, then not again for a poll."""
    clock = SetClock(NOW)
    loop = TimerLoop(store, clock, TimerSettings(poll_seconds=1.0))
    await store.create(ScheduleSpec(THREAD, NOW + 3600, "later", "U1"), NOW)
    assert await loop.look() == pytest.approx(1.0, abs=0.01)
    clock.time += 0.5
    assert await loop.look() == pytest.approx(0.5, abs=0.01)
    assert loop.fired == 0


async def test_the_loop_wakes_when_the_next_timer_is_due_and_fires_it(store: ScheduleStore, redis: Redis) -> None:
    """A timer due 0.3 s on: the loop wakes then (not a poll later) and fires it; a shard whose timer is due sooner
    than MIN_GAP is looked at MIN_GAP on."""
    clock = SetClock(NOW)
    loop = TimerLoop(store, clock, TimerSettings(poll_seconds=1.0))
    await store.create(ScheduleSpec(THREAD, NOW + 0.3, "soon", "U1"), NOW)
    assert await loop.look() == pytest.approx(0.3, abs=0.01)
    clock.time += 0.3
    await loop.look()
    assert loop.fired == 1
    clock.time += 1.0  # every shard's next look has come
    await store.create(ScheduleSpec(THREAD, clock.time + MIN_GAP / 2, "very soon", "U1"), clock.time)
    assert await loop.look() == pytest.approx(MIN_GAP, abs=0.01)
    clock.time += MIN_GAP
    await loop.look()
    assert loop.fired == 2


async def test_a_clock_moved_forward_is_looked_at_at_once(store: ScheduleStore) -> None:
    """The test clock jumps 30 minutes: the timers due by then fire at the next look."""
    clock = SetClock(NOW)
    loop = TimerLoop(store, clock, TimerSettings(poll_seconds=1.0))
    await store.create(ScheduleSpec(THREAD, NOW + 1800, "in half an hour", "U1"), NOW)
    await loop.look()
    clock.time += 1800
    await loop.look()
    assert loop.fired == 1
