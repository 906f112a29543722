"""The timer loop: every worker looks for due timers and fires them as tasks of their threads' queues.

Every worker runs one, and they may all fire the same shards: firing is one script per batch that checks each
timer is still due at the time read (store/schedules_lua.py FIRE), so a timer fires once however many loops see
it. Each look at a shard reads the timers due within the next poll (one ZRANGEBYSCORE), so the loop wakes when the
earliest of them is due rather than at the next poll, and a shard with nothing due that soon is looked at again
one poll later. An idle loop therefore costs one ZRANGEBYSCORE per shard per poll (TIMER_POLL_SECONDS; the shards
in one pipeline), whatever the number of future timers. A timer set by another process for sooner than the next
look is seen at that look: at most one poll late. A busy shard is looked at no more often than every MIN_GAP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from bot.core.clock import Clock
from bot.core.faults import CrashPoints
from store.connection import REDIS_FAILURES
from store.schedules import DueTimer, ScheduleStore, to_ms

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 8.0
MIN_GAP = 0.1  # seconds between two looks at one shard, at least: what bounds a busy loop's reads


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
        self._look_at = dict.fromkeys(range(schedules.space.shards), 0.0)  # clock time of each shard's next look
        self.fired = 0  # timers this loop fired (what the benchmark and the logs count)

    async def run(self, stopping: asyncio.Event) -> None:
        """Look at the shards when due and fire their due timers, until `stopping` is set; Redis failures are
        waited out."""
        failures = 0
        while not stopping.is_set():
            try:
                pause = await self.look()
                failures = 0
            except REDIS_FAILURES as exc:
                failures += 1
                pause = min(self._settings.poll_seconds * 2**failures, MAX_BACKOFF_SECONDS)
                log.warning("cannot fire due timers yet (%s); retrying", exc)
            # Whatever else goes wrong, the loop goes on: without it no timer would fire until a restart.
            except Exception:  # logged with its traceback (log.exception)
                failures += 1
                pause = min(self._settings.poll_seconds * 2**failures, MAX_BACKOFF_SECONDS)
                log.exception("the timer loop failed; it goes on after a pause")
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=pause)

    async def look(self) -> float:
        """Look at the shards whose time has come, fire what is due; returns the seconds until the next look."""
        poll, batch = self._settings.poll_seconds, self._settings.batch
        now = self._clock.now()
        # (A look more than a poll away means the clock went back, as a test clock may: look now.)
        shards = [shard for shard, at in self._look_at.items() if at <= now or at > now + poll]
        if shards:
            found = await self._schedules.due_by_shard(now + poll, batch, shards)
            due = {shard: [t for t in timers if t.due_ms <= to_ms(now)] for shard, timers in found.items()}
            due = {shard: timers for shard, timers in due.items() if timers}
            if due:
                self._crash.reached("timer.firing")
                # One shard's failure (its node failing over) must not hold the others' timers back: every shard
                # fires what it can, and the first failure is raised after, for the loop's backoff.
                results = await asyncio.gather(
                    *(self._fire(shard, timers, now) for shard, timers in due.items()), return_exceptions=True
                )
                self._crash.reached("timer.fired")
                self.fired += sum(result for result in results if isinstance(result, int))
                if failed := [result for result in results if isinstance(result, BaseException)]:
                    raise failed[0]
            for shard in shards:
                self._look_at[shard] = self._next_look(found.get(shard, []), len(due.get(shard, [])), now)
        return max(0.0, min(self._look_at.values()) - self._clock.now())

    def _next_look(self, timers: list[DueTimer], fired: int, now: float) -> float:
        """When to look at a shard again: at once if its batch was full of due timers, when its next timer within
        the poll is due (MIN_GAP on at least), or one poll on."""
        if fired >= self._settings.batch:
            return now
        upcoming = [timer.due_ms / 1000 for timer in timers if timer.due_ms > to_ms(now)]
        if upcoming:
            return max(min(upcoming), now + MIN_GAP)
        return now + self._settings.poll_seconds

    async def _fire(self, shard: int, timers: list[DueTimer], now: float) -> int:
        fired, skipped = await self._schedules.fire(shard, timers, now)
        if fired:
            log.info("fired %d timer(s) of shard %d", fired, shard)
        if skipped:
            log.debug("%d timer(s) of shard %d were fired by another worker, cancelled or paused", skipped, shard)
        return fired
