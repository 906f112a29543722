"""The timer loop: every worker looks for due timers and fires them as tasks of their threads' queues.

Every worker runs one, and they may all fire the same shards: firing is one script per batch that checks each
timer is still due at the time read (store/schedules_lua.py FIRE), so a timer fires once however many loops see
it. An idle loop costs one ZRANGEBYSCORE per shard per poll (TIMER_POLL_SECONDS; all shards in one pipeline),
whatever the number of future timers; a timer fires at most a poll late, plus the time to fire the ones before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from bot.core.clock import Clock
from bot.core.faults import CrashPoints
from store.connection import REDIS_FAILURES
from store.schedules import DueTimer, ScheduleStore

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 8.0


@dataclass(frozen=True)
class TimerSettings:
    """How often the loop looks, and how many timers of a shard one script fires."""

    poll_seconds: float = 1.0
    batch: int = 200


class TimerLoop:
    """Fires due timers until stopped."""

    def __init__(
        self, schedules: ScheduleStore, clock: Clock, settings: TimerSettings, crash: CrashPoints | None = None
    ) -> None:
        self._schedules = schedules
        self._clock = clock
        self._settings = settings
        self._crash = crash or CrashPoints()
        self.fired = 0  # timers this loop fired (what the benchmark and the logs count)

    async def run(self, stopping: asyncio.Event) -> None:
        """Look for due timers every poll and fire them, until `stopping` is set; a Redis failure is waited out."""
        failures = 0
        while not stopping.is_set():
            more = False
            try:
                more = await self.fire_due()
                failures = 0
            except REDIS_FAILURES as exc:
                failures += 1
                log.warning("cannot fire due timers yet (%s); retrying", exc)
            # Whatever else goes wrong, the loop goes on: without it no timer would fire until a restart.
            except Exception:
                failures += 1
                log.exception("the timer loop failed; it goes on after a pause")
            if more:  # a full batch: others may be due already
                continue
            pause = self._settings.poll_seconds * (2 ** min(failures, 3) if failures else 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=min(pause, MAX_BACKOFF_SECONDS))

    async def fire_due(self) -> bool:
        """Fire what is due now, one script per shard with due timers; True if a shard had a full batch due."""
        now = self._clock.now()
        due = await self._schedules.due_by_shard(now, self._settings.batch)
        if not due:
            return False
        self._crash.reached("timer.firing")
        fired = await asyncio.gather(*(self._fire(shard, timers, now) for shard, timers in due.items()))
        self._crash.reached("timer.fired")
        self.fired += sum(fired)
        return any(len(timers) >= self._settings.batch for timers in due.values())

    async def _fire(self, shard: int, timers: list[DueTimer], now: float) -> int:
        fired, skipped = await self._schedules.fire(shard, timers, now)
        if fired:
            log.info("fired %d timer(s) of shard %d", fired, shard)
        if skipped:
            log.debug("%d timer(s) of shard %d were fired by another worker, cancelled or paused", skipped, shard)
        return fired
