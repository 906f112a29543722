"""Durable timers: schedules an agent sets in its own thread, kept in Redis, fired as tasks of its thread's queue.

A timer is state, not a sleeping process. Each schedule lives in its thread's shard (store/keys.py) with an entry in
the shard's due index (a ZSET by next run). A worker's timer loop (bot/tasks/timers.py) reads the due entries and
fires them with one script per batch (store/schedules_lua.py FIRE), which queues a SCHEDULED task exactly as intake
queues a mention (store/lua.py SUBMIT_TASK): deduplicated, in order with the thread's other work, resumable, fenced.

The rules:
- Exactly once: firing a timer and queueing its task is one atomic step; the task id names the schedule and the
  run's due time, so firing the same run again (two workers, a retry after a lost reply) queues nothing more.
- Downtime: a timer that came due while no process ran fires once when one starts; a recurring one then runs next
  at the first period after now (never once per missed period), keeping its phase.
- Bounds: at most `per_thread` and `per_channel` active schedules (paused ones count), a recurring one at most
  every `min_interval` seconds, and none runs past `max_lifetime` after it was made (its lifetime cap).
- Failures: a recurring schedule whose runs fail `max_failures` times in a row pauses itself (record_outcome).

All times given to and returned by this module are Unix seconds (floats); Redis holds integer milliseconds. The
caller passes `now` (bot/core/clock.py's, which tests and the playground can move forward).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from store import decode, keys, schedules_cron, schedules_lua
from store.connection import RedisClient
from store.lua import FENCED, unless_fenced
from store.models import TaskStatus, ThreadRef
from store.schedule_models import (
    TASK_PREFIX,
    DueTimer,
    Schedule,
    ScheduleKind,
    ScheduleLimits,
    ScheduleRefused,
    ScheduleSpec,
    channel_member,
    due_member,
    run_task_id,
    schedule_of_task,
    to_ms,
)
from store.tasks import ThreadLease

__all__ = [
    "DueTimer",
    "Schedule",
    "ScheduleKind",
    "ScheduleLimits",
    "ScheduleRefused",
    "ScheduleSpec",
    "ScheduleStore",
    "channel_member",
    "due_member",
    "run_task_id",
    "schedule_of_task",
    "to_ms",
]


class ScheduleStore:
    """Creates, lists, cancels and fires schedules."""

    def __init__(
        self,
        redis: RedisClient,
        space: keys.KeySpace,
        limits: ScheduleLimits | None = None,
        *,
        agent_ttl: int = keys.AGENT_TTL,
        task_ttl: int = keys.TASK_TTL,
    ) -> None:
        self._redis = redis
        self._keys = space
        self.limits = limits or ScheduleLimits()
        self._agent_ttl = agent_ttl
        self._task_ttl = task_ttl
        self._create = redis.register_script(schedules_lua.CREATE)
        self._fire = redis.register_script(schedules_lua.FIRE)
        self._record = redis.register_script(schedules_lua.RECORD_OUTCOME)
        self._resume = redis.register_script(schedules_lua.RESUME)
        self._cancel = redis.register_script(schedules_lua.CANCEL)
        self._renew = redis.register_script(schedules_lua.RENEW)
        self._refill = redis.register_script(schedules_lua.REFILL_CRON)

    @property
    def space(self) -> keys.KeySpace:
        """The key names this store uses."""
        return self._keys

    def _check(self, spec: ScheduleSpec, now: float) -> float:
        """Refuse what the limits do not allow; returns when the schedule ends (its last possible run)."""
        limits = self.limits
        if not spec.note.strip():
            raise ScheduleRefused("A schedule needs a note saying what to do when it runs.")
        if spec.at > now + limits.max_lifetime:
            raise ScheduleRefused(f"A schedule may start at most {_days(limits.max_lifetime)} from now.")
        lifetime_end = now + limits.max_lifetime
        if spec.kind == "once":
            return max(spec.at, now)
        if spec.cron is not None:
            gap = schedules_cron.shortest_gap(spec.cron, spec.tz, max(spec.at, now))
            if gap < limits.min_interval:
                raise ScheduleRefused(
                    f"A recurring schedule may run at most every {_duration(limits.min_interval)}; the cron "
                    f"expression {spec.cron!r} runs as often as every {_duration(gap)}."
                )
        elif spec.every is not None and spec.every < limits.min_interval:
            raise ScheduleRefused(
                f"A recurring schedule may run at most every {_duration(limits.min_interval)}, "
                f"not every {_duration(spec.every)}."
            )
        if spec.count is not None and spec.count < 1:
            raise ScheduleRefused("A recurring schedule's count of runs must be at least 1.")
        if spec.until is not None and spec.until < max(spec.at, now):
            raise ScheduleRefused("A recurring schedule's end is before its first run.")
        return min(spec.until, lifetime_end) if spec.until is not None else lifetime_end

    async def create(
        self, spec: ScheduleSpec, now: float, lease: ThreadLease | None = None, *, schedule_id: str | None = None
    ) -> Schedule:
        """Record a schedule and put it in its shard's due index; ScheduleRefused says why not.

        With a lease (the running task's) it is written only while that run still holds its thread: a run whose
        thread was reset meanwhile schedules nothing. The channel's count is summed over the shards before the
        script runs: two threads of one channel creating at the same moment may pass the channel's limit by one.
        A `schedule_id` the caller derives from what asked for it (a tool call's id) makes creating again, after a
        crash before the caller recorded the first, return the schedule already there instead of a second one.
        """
        ends_at = self._check(spec, now)
        ref, space = spec.thread, self._keys
        shard = space.shard_of(ref)
        schedule_id = schedule_id or secrets.token_hex(5)
        expires_ms = to_ms(ends_at) + self._agent_ttl * 1000
        first = max(spec.at, now)
        runs: list[float] = []
        if spec.cron is not None:
            runs = schedules_cron.next_runs(spec.cron, spec.tz, first)
            first = runs[0]
            if first > ends_at:
                raise ScheduleRefused(f"The cron expression {spec.cron!r} first runs after the schedule's end.")
        fields = {
            "id": schedule_id,
            "thread": ref.encode(),
            "thread_ts": ref.thread_ts,
            "kind": spec.kind,
            "next_at": str(to_ms(first)),
            "every_ms": str(to_ms(spec.every or 0)),
            "note": spec.note,
            "created_by": spec.created_by,
            "created_at": str(to_ms(now)),
            "ends_at": str(to_ms(ends_at)),
            "end_count": str(spec.count or 0),
            "until": str(to_ms(spec.until or 0)),
            "until_goal": "1" if spec.until_goal else "0",
            "fired": "0",
            "failures": "0",
            "paused": "0",
            "tz": spec.tz,
        }
        if spec.cron is not None:
            fields |= {"cron": spec.cron, "runs": schedules_cron.encode_runs(runs)}
        elsewhere = await self._channel_count(ref.team_id, ref.channel_id, now, skip=shard)
        code, count = await self._create(
            keys=[
                space.queued(ref),
                space.thread_queue(ref),
                space.schedule(ref, schedule_id),
                space.thread_schedules(ref),
                space.channel_schedules(ref.team_id, ref.channel_id, shard),
                space.timers(shard),
            ],
            args=[
                lease.entry_id if lease else "",
                lease.consumer if lease else "",
                schedule_id,
                json.dumps(fields, separators=(",", ":")),
                due_member(ref, schedule_id),
                to_ms(first),
                expires_ms,
                to_ms(now),
                self.limits.per_thread,
                self.limits.per_channel,
                elsewhere,
                channel_member(ref, schedule_id),
            ],
        )
        if int(code) == FENCED:
            unless_fenced(code, lease.entry_id if lease else "")
        if int(code) == schedules_lua.EXISTS:
            existing = await self.get(ref, schedule_id)
            if existing is not None:
                return existing
        if int(code) == schedules_lua.THREAD_FULL:
            raise ScheduleRefused(
                f"This thread already has {count} active schedules, the most it may have "
                f"({self.limits.per_thread}): cancel one first."
            )
        if int(code) == schedules_lua.CHANNEL_FULL:
            raise ScheduleRefused(
                f"This channel already has {count} active schedules, the most it may have "
                f"({self.limits.per_channel}): cancel one first."
            )
        return Schedule.from_fields(fields)

    async def _channel_count(self, team_id: str, channel_id: str, now: float, *, skip: int | None = None) -> int:
        """How many of the channel's schedules have not expired, in every shard but `skip`."""
        shards = [shard for shard in range(self._keys.shards) if shard != skip]
        if not shards:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for shard in shards:
            pipe.zcount(self._keys.channel_schedules(team_id, channel_id, shard), f"({to_ms(now)}", "+inf")
        return sum(int(found) for found in await pipe.execute())

    async def get(self, ref: ThreadRef, schedule_id: str) -> Schedule | None:
        """One schedule of thread `ref`, or None if it ended, was cancelled or expired, or is another thread's (its
        key names its shard, not its thread: an id from another thread of the shard finds nothing here)."""
        fields = decode.fields(await self._redis.hgetall(self._keys.schedule(ref, schedule_id)))
        schedule = Schedule.from_fields(fields) if fields else None
        return schedule if schedule is not None and schedule.thread == ref else None

    async def _read(self, ref_ids: Sequence[tuple[ThreadRef, str]]) -> list[Schedule]:
        if not ref_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for ref, schedule_id in ref_ids:
            pipe.hgetall(self._keys.schedule(ref, schedule_id))
        found = [Schedule.from_fields(decode.fields(raw)) for raw in await pipe.execute() if raw]
        return sorted(found, key=lambda schedule: (schedule.next_at, schedule.schedule_id))

    async def list_thread(self, ref: ThreadRef) -> list[Schedule]:
        """The thread's schedules, soonest first (paused ones too)."""
        ids = await self._redis.zrange(self._keys.thread_schedules(ref), 0, -1)
        return await self._read([(ref, decode.text(schedule_id)) for schedule_id in ids])

    async def list_channel(self, team_id: str, channel_id: str) -> list[Schedule]:
        """The channel's schedules, every shard's, soonest first."""
        pipe = self._redis.pipeline(transaction=False)
        for shard in range(self._keys.shards):
            pipe.zrange(self._keys.channel_schedules(team_id, channel_id, shard), 0, -1)
        ref_ids: list[tuple[ThreadRef, str]] = []
        for members in await pipe.execute():
            for member in members:
                thread_ts, _, schedule_id = decode.text(member).rpartition(":")
                ref_ids.append((ThreadRef(team_id, channel_id, thread_ts), schedule_id))
        return await self._read(ref_ids)

    async def cancel(self, ref: ThreadRef, schedule_id: str) -> bool:
        """Cancel one schedule (also what "the goal is met" does); False if it had already ended or was cancelled."""
        return await self._cancel_ids(ref, [schedule_id]) > 0

    async def cancel_thread(self, ref: ThreadRef) -> int:
        """Cancel every schedule of the thread (a reset, a Stop); returns how many there were."""
        cancelled = 0
        for _ in range(10):  # a running task may add one meanwhile (unless fenced out): read again until none
            ids = [decode.text(found) for found in await self._redis.zrange(self._keys.thread_schedules(ref), 0, -1)]
            if not ids:
                break
            cancelled += await self._cancel_ids(ref, ids)
        return cancelled

    async def cancel_channel(self, team_id: str, channel_id: str) -> int:
        """Cancel every schedule of the channel (a channel reset), thread by thread; returns how many there were."""
        by_thread: dict[ThreadRef, list[str]] = {}
        for schedule in await self.list_channel(team_id, channel_id):
            by_thread.setdefault(schedule.thread, []).append(schedule.schedule_id)
        cancelled = 0
        for ref, ids in by_thread.items():
            cancelled += await self._cancel_ids(ref, ids)
        return cancelled

    async def _cancel_ids(self, ref: ThreadRef, ids: list[str]) -> int:
        space = self._keys
        shard = space.shard_of(ref)
        script_keys, args = [space.timers(shard)], []
        for schedule_id in ids:
            script_keys += [
                space.schedule(ref, schedule_id),
                space.thread_schedules(ref),
                space.channel_schedules(ref.team_id, ref.channel_id, shard),
            ]
            args += [schedule_id, due_member(ref, schedule_id), channel_member(ref, schedule_id)]
        return int(await self._cancel(keys=script_keys, args=[*args, ref.encode()]))

    async def resume(self, ref: ThreadRef, schedule_id: str, now: float) -> bool:
        """Resume a paused schedule at its next run after now; False if it was not paused, or has nothing left."""
        await self.refill_cron(ref, schedule_id, now)  # a cron schedule paused long enough may have no runs left
        shard = self._keys.shard_of(ref)
        result = await self._resume(
            keys=[self._keys.schedule(ref, schedule_id), self._keys.timers(shard)],
            args=[to_ms(now), due_member(ref, schedule_id), ref.encode()],
        )
        return int(result) == 1

    async def renew(self, ref: ThreadRef, schedule_id: str, now: float) -> Schedule | None:
        """Renew a recurring schedule's lifetime cap from now (up to its own end, if it has one); the schedule as it
        is now, or None if it has ended (a one-off needs no renewal: it is returned unchanged)."""
        schedule = await self.get(ref, schedule_id)
        if schedule is None or not schedule.recurring:
            return schedule
        lifetime_end = now + self.limits.max_lifetime
        ends_at = min(schedule.until, lifetime_end) if schedule.until is not None else lifetime_end
        shard = self._keys.shard_of(ref)
        result = await self._renew(
            keys=[
                self._keys.schedule(ref, schedule_id),
                self._keys.thread_schedules(ref),
                self._keys.channel_schedules(ref.team_id, ref.channel_id, shard),
            ],
            args=[
                to_ms(now),
                to_ms(ends_at),
                to_ms(ends_at) + self._agent_ttl * 1000,
                schedule_id,
                channel_member(ref, schedule_id),
            ],
        )
        return await self.get(ref, schedule_id) if int(result) >= 0 else None

    async def refill_cron(self, ref: ThreadRef, schedule_id: str, now: float) -> bool:
        """Top up a cron schedule's run times to the next RUNS_AHEAD after now (what its runs do, each time);
        one that had run out of them goes back in the due index at the first. Idempotent; False if it is gone or
        not a cron schedule."""
        schedule = await self.get(ref, schedule_id)
        if schedule is None or schedule.cron is None:
            return False
        runs = schedules_cron.next_runs(schedule.cron, schedule.tz, now)
        shard = self._keys.shard_of(ref)
        result = await self._refill(
            keys=[self._keys.schedule(ref, schedule_id), self._keys.timers(shard)],
            args=[schedules_cron.encode_runs(runs), due_member(ref, schedule_id), to_ms(now)],
        )
        return int(result) == 1

    async def record_outcome(self, ref: ThreadRef, schedule_id: str, task_id: str, *, ok: bool) -> bool:
        """Record how a run (task `task_id`) ended, once per run; True if its failures just paused the schedule."""
        shard = self._keys.shard_of(ref)
        result = await self._record(
            keys=[self._keys.schedule(ref, schedule_id), self._keys.timers(shard)],
            args=[task_id, "1" if ok else "0", self.limits.max_failures, due_member(ref, schedule_id)],
        )
        return int(result) == 1

    async def due(self, shard: int, now: float, limit: int) -> list[DueTimer]:
        """Up to `limit` of the shard's timers due by `now`, earliest first (one ZRANGEBYSCORE)."""
        found = await self._redis.zrangebyscore(
            self._keys.timers(shard), "-inf", to_ms(now), start=0, num=limit, withscores=True
        )
        return _due_timers(found)

    async def ends_its_schedule(self, ref: ThreadRef, task_id: str) -> bool:
        """Whether a scheduled run was its schedule's last (FIRE marks it so): it finds its schedule gone, and is
        still answered; a run that finds its schedule gone without being the last was cancelled after it was
        queued."""
        return decode.text(await self._redis.hget(self._keys.task(ref, task_id), "final") or b"") == "1"

    async def run_status(self, ref: ThreadRef, task_id: str) -> TaskStatus | None:
        """Where a scheduled run's task is (None: its record is gone, or unreadable)."""
        status = await self._redis.hget(self._keys.task(ref, task_id), "status")
        try:
            return TaskStatus(decode.text(status)) if status is not None else None
        except ValueError:
            return None

    async def due_by_shard(
        self, until: float, limit: int, shards: Sequence[int] | None = None
    ) -> dict[int, list[DueTimer]]:
        """Up to `limit` timers due by `until`, earliest first, of each of the shards (all by default) that has some:
        one ZRANGEBYSCORE per shard, in one pipeline (a cluster client sends each node its own)."""
        looked = list(range(self._keys.shards)) if shards is None else list(shards)
        pipe = self._redis.pipeline(transaction=False)
        for shard in looked:
            pipe.zrangebyscore(self._keys.timers(shard), "-inf", to_ms(until), start=0, num=limit, withscores=True)
        found: dict[int, list[DueTimer]] = {}
        for shard, entries in zip(looked, await pipe.execute(), strict=True):
            timers = _due_timers(entries)
            if timers:
                found[shard] = timers
        return found

    async def next_due(self, shard: int) -> float | None:
        """When the shard's earliest timer is due (seconds), or None if it has none."""
        found = await self._redis.zrange(self._keys.timers(shard), 0, 0, withscores=True)
        return float(found[0][1]) / 1000 if found else None

    async def fire(self, shard: int, timers: Sequence[DueTimer], now: float) -> tuple[int, int]:
        """Fire the shard's due timers in one script: queue each one's task and move it on (or end it). Returns
        (fired, skipped); a timer another worker fired first, or that was cancelled or paused, is skipped."""
        if not timers:
            return 0, 0
        space = self._keys
        script_keys = [space.timers(shard)]
        args: list[str | int] = [to_ms(now), self._task_ttl, self._agent_ttl, repr(now)]
        for timer in timers:
            ref, task_id = timer.thread, f"{TASK_PREFIX}{timer.schedule_id}-{timer.due_ms}"
            script_keys += [
                space.schedule(ref, timer.schedule_id),
                space.thread_schedules(ref),
                space.channel_schedules(ref.team_id, ref.channel_id, shard),
                space.task(ref, task_id),
                space.inbox(ref),
                space.queued(ref),
                space.queue(shard),
                space.state(ref),
                space.thread_channel_threads(ref),
            ]
            args += [timer.member, timer.due_ms, task_id, channel_member(ref, timer.schedule_id)]
        fired, skipped = await self._fire(keys=script_keys, args=args)
        return int(fired), int(skipped)

    async def load_scripts(self) -> None:
        """Load the scripts (on every primary of a cluster)."""
        for source in schedules_lua.ALL:
            await self._redis.script_load(source)


def _due_timers(entries: Any) -> list[DueTimer]:
    """The due index entries of a ZRANGEBYSCORE WITHSCORES reply ((member, score) pairs), parsed."""
    parsed = (DueTimer.parse(decode.text(member), float(score)) for member, score in entries)
    return [timer for timer in parsed if timer is not None]


def _duration(seconds: float) -> str:
    """A short duration in words: 90 -> "1.5 minutes"."""
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours" if seconds != 3600 else "hour"
    if seconds >= 60:
        return f"{seconds / 60:g} minutes" if seconds != 60 else "minute"
    return f"{seconds:g} seconds"


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days"
