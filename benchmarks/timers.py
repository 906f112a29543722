"""Part: durable timers. 10,000 timers due within one minute, fired by one process; and the cost of idling.

The timer loop the bot runs (bot/tasks/timers.py, TIMER_POLL_SECONDS = 1 s, 16 shards) runs here in the benchmark's
own process against the private Redis, on real time, so that what is measured is the firing alone: each fired timer
is a SCHEDULED task queued in its thread's inbox, as intake queues a mention, and no runner takes them (answering
them is what the other parts measure). Lateness is from a timer's due time to the return of the script that fired
it (its task queued). Redis commands are counted by MONITOR: those the loop sent, and those its scripts ran.
Then 10,000 timers due an hour later, and the loop idle for IDLE_SECONDS: the commands it costs a second.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence

from redis.asyncio import Redis

from benchmarks.figures import PartResult, Row, ms
from benchmarks.harness import Lab
from benchmarks.redis_monitor import CommandTally
from benchmarks.stats import percentile
from bot.core.clock import SystemClock
from bot.tasks.timers import TimerLoop, TimerSettings
from store.keys import KeySpace
from store.models import ThreadRef
from store.schedules import DueTimer, ScheduleLimits, ScheduleSpec, ScheduleStore

TIMERS = 10_000
CHANNELS = 100  # 100 threads each
WINDOW_SECONDS = 60.0
LEAD_SECONDS = 40.0  # the first timer is due this long after they are all made
IDLE_SECONDS = 10.0
POLL_SECONDS = 1.0
TARGET_P99_SECONDS = 2.0


class TimedSchedules(ScheduleStore):
    """The bot's store, noting when each fired timer's script returned."""

    def __init__(self, redis: Redis, space: KeySpace, limits: ScheduleLimits) -> None:
        super().__init__(redis, space, limits)
        self.lateness: list[float] = []
        self.fired_ids: Counter[str] = Counter()

    async def fire(self, shard: int, timers: Sequence[DueTimer], now: float) -> tuple[int, int]:
        """Fire as the bot does; each timer's lateness is measured when the script returns."""
        fired, skipped = await super().fire(shard, timers, now)
        done = time.time()
        if not skipped:  # one process: nothing is fired by another, so every timer of the batch fired now
            self.lateness += [done - timer.due_ms / 1000 for timer in timers]
            self.fired_ids.update(timer.schedule_id for timer in timers)
        return fired, skipped


async def make_timers(store: ScheduleStore, first_due: float, window: float, count: int = TIMERS) -> None:
    """`count` once timers in as many threads, due at random times over `window` seconds from `first_due`."""
    now = time.time()
    specs = [
        ScheduleSpec(
            ThreadRef("T0BENCH", f"C{n % CHANNELS:03d}", f"1700000000.{n:06d}"),
            first_due + random.uniform(0, window),
            "check on the deploy",
            "U0BENCH",
        )
        for n in range(count)
    ]
    for start in range(0, len(specs), 50):
        await asyncio.gather(*(store.create(spec, now) for spec in specs[start : start + 50]))


async def tasks_queued(redis: Redis, space: KeySpace) -> int:
    """How many tasks wait in the bench threads' inboxes (each thread has one schedule: one task at most)."""
    total = 0
    for channel in range(CHANNELS):
        async for key in redis.scan_iter(match=f"agent:T0BENCH:*:thread:C{channel:03d}:*:inbox", count=1000):
            total += await redis.llen(key)
    return total


async def burst(
    redis: Redis, space: KeySpace, limits: ScheduleLimits
) -> tuple[TimedSchedules, int, Counter[str], Counter[str]]:
    """Fire 10,000 timers due within a minute: the store (with its measures), the tasks queued, and the commands
    the loop sent and its scripts ran."""
    store = TimedSchedules(redis, space, limits)
    first_due = time.time() + LEAD_SECONDS
    await make_timers(store, first_due, WINDOW_SECONDS)
    if time.time() > first_due:
        raise RuntimeError("making the timers took longer than LEAD_SECONDS: the first were due before the loop ran")
    loop = TimerLoop(store, SystemClock(), TimerSettings(poll_seconds=POLL_SECONDS))
    stopping = asyncio.Event()
    async with CommandTally(redis) as tally:
        await tally.take()
        running = asyncio.create_task(loop.run(stopping))
        for _ in range(int((LEAD_SECONDS + WINDOW_SECONDS + 30) / 0.5)):  # until all fired, or a deadline
            if loop.fired >= TIMERS:
                break
            await asyncio.sleep(0.5)
        stopping.set()
        await running
        sent, scripted = await tally.take()
    return store, await tasks_queued(redis, space), sent, scripted


async def idle(redis: Redis, space: KeySpace, limits: ScheduleLimits) -> tuple[float, Counter[str]]:
    """10,000 timers due in an hour, the loop idle: its commands a second, and which."""
    store = ScheduleStore(redis, space, limits)
    await make_timers(store, time.time() + 3600, WINDOW_SECONDS)
    loop = TimerLoop(store, SystemClock(), TimerSettings(poll_seconds=POLL_SECONDS))
    stopping = asyncio.Event()
    async with CommandTally(redis) as tally:
        await tally.take()
        running = asyncio.create_task(loop.run(stopping))
        started = time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        stopping.set()
        await running
        elapsed = time.monotonic() - started
        sent, _ = await tally.take()
    return sum(sent.values()) / elapsed, sent


async def run(lab: Lab) -> PartResult:
    """Both measures, on the private Redis, emptied first."""
    result = PartResult("timers", f"Durable timers: {TIMERS:,} due within a minute, one process; and idle cost")
    redis = Redis.from_url(lab.redis_url, decode_responses=True)
    space = KeySpace()
    limits = ScheduleLimits(per_thread=10, per_channel=TIMERS, min_interval=300)
    try:
        await redis.flushall()
        store, queued, sent, scripted = await burst(redis, space, limits)
        await redis.flushall()
        per_second, idle_commands = await idle(redis, space, limits)
        await redis.flushall()
    finally:
        await redis.aclose()
    late = store.lateness
    fired = sum(store.fired_ids.values())
    twice = sum(1 for count in store.fired_ids.values() if count > 1)
    result.rows += [
        Row(
            f"{TIMERS:,} timers due within {WINDOW_SECONDS:.0f} s: fired, tasks queued, fired twice",
            f"{fired:,}, {queued:,}, {twice}",
            f"{TIMERS:,}, {TIMERS:,}, 0",
            None,
            "all once",
            fired == TIMERS == queued and twice == 0,
        ),
        Row(
            "Lateness, due -> task queued: p50 / p99 / max",
            f"{ms(percentile(late, 50))} / {ms(percentile(late, 99))} / {ms(max(late))}",
            f"the poll interval {ms(POLL_SECONDS)}",
            None,
            f"p99 < {TARGET_P99_SECONDS:g} s",
            percentile(late, 99) < TARGET_P99_SECONDS,
        ),
        Row(
            "Redis commands per fired timer: sent by the loop / run by its scripts",
            f"{_per(sum(sent.values()), fired)} / {_per(sum(scripted.values()), fired)}",
            f"sent: {', '.join(f'{name} {count}' for name, count in sent.most_common())}",
        ),
        Row(
            f"Idle, {TIMERS:,} timers due in an hour: Redis commands a second",
            f"{per_second:.1f} ({', '.join(f'{name} {count}' for name, count in idle_commands.most_common())})",
            f"{space.shards} shards x 1 poll/s = {space.shards}/s",
        ),
    ]
    result.series = {
        "lateness": sorted(late),
        "fired": fired,
        "queued": queued,
        "sent": dict(sent),
        "scripted": dict(scripted),
        "idle_commands_per_second": per_second,
    }
    result.notes.append(
        "The loop runs in the benchmark's process, as in a bot worker, with no runner taking the tasks; lateness "
        "includes the poll (a timer is seen at most 1 s late) and the batches before it (200 a shard a script)."
    )
    return result


def _per(count: int, fired: int) -> str:
    return f"{count / fired:.2f}" if fired else "-"
