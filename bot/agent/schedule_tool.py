"""`schedule`: the agent sets, lists and cancels follow-ups in its own thread (durable timers, store/schedules.py).

A follow-up runs once (at a time, or after a delay) or recurs (every so many minutes, or by a cron expression), up to
an end: a count of runs, a date, or until the agent says its goal is met (cancel with a reason). When it comes due,
the thread's agent answers its own note (bot/tasks/scheduled.py), in the thread. Only the thread's own schedules
are seen and touched: every call is about the task's thread.

Times are read in the time zone of the person the task is for (their Slack profile; the creator of the schedule
for a scheduled run), and every time is given back both as ISO and as Slack's date token, which the model can
write in its answer so that each reader sees their own time.

A create is fenced with the task's lease (a run whose thread was reset meanwhile schedules nothing), and its id is
derived from the call, so a call run again after a crash (the task resumed before its result was journaled) finds
the schedule it made instead of making a second one.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from bot.agent.schedule_times import BadTime, Zone, parse_local, shown
from bot.agent.tools import ToolCall, ToolResult
from bot.core.clock import Clock
from bot.core.ports import SlackGateway
from store.models import TaskKind
from store.schedules import Schedule, ScheduleLimits, ScheduleRefused, ScheduleSpec, ScheduleStore
from store.schedules_cron import explain

log = logging.getLogger(__name__)

# Minutes a delay or an interval may name: a year (the lifetime cap ends any schedule well before).
MAX_MINUTES = 366 * 24 * 60
MAX_CRON_CHARS = 100

NAME = "schedule"
MAX_NOTE_CHARS = 4_000
MAX_REASON_CHARS = 500
MINUTE = 60.0


def definition(limits: ScheduleLimits) -> dict[str, Any]:
    """The tool for the API, its description telling the model the limits so it asks for what it may get."""
    return {
        "name": NAME,
        "description": (
            "Schedule a follow-up in this thread: at its time you are run again with your note and answer here, "
            "even if nobody writes. Use it when asked to remind, check again later, or repeat a check. "
            "action=create: once (`at` a date-time, or `in_minutes`), or recurring (`every_minutes`, or `cron`: "
            "five fields, minute hour day-of-month month day-of-week), with `note` (what to do then, as an "
            "instruction to yourself with everything you will need) and for a recurring one an end: `count` runs, "
            "`until` a date-time, or `until_goal` (then call cancel with a `reason` once the goal is met). "
            "Times without an offset, and cron, are read in the time zone of the person who asked. "
            "action=list: this thread's schedules and their next runs. action=cancel: one of them by "
            "`schedule_id`. action=renew: a recurring one's lifetime starts again from now (when it is still "
            "needed near its end). Results give times as ISO and as a Slack date token (<!date^…>): write the token in "
            "your answer so each reader sees their own time. "
            f"Limits: at most {limits.per_thread} active schedules in a thread ({limits.per_channel} in a channel); "
            f"a recurring one runs at most every {_minutes(limits.min_interval)} and for at most "
            f"{limits.max_lifetime / 86400:g} days."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["create", "list", "cancel", "renew"]},
                "note": {"type": "string", "description": "create: what to do when it runs."},
                "at": {"type": "string", "description": "create: first run, ISO date-time like 2026-12-04T09:00."},
                "in_minutes": {"type": "number", "description": "create: first run this many minutes from now."},
                "every_minutes": {"type": "number", "description": "create: recur every this many minutes."},
                "cron": {"type": "string", "description": "create: recur by this cron expression, e.g. 0 9 * * 1-5."},
                "count": {"type": "integer", "minimum": 1, "description": "create: end after this many runs."},
                "until": {"type": "string", "description": "create: end at this ISO date-time."},
                "until_goal": {"type": "boolean", "description": "create: run until you cancel it, goal met."},
                "schedule_id": {"type": "string", "description": "cancel: which schedule."},
                "reason": {"type": "string", "description": "cancel: why, e.g. the goal is met."},
            },
            "required": ["action"],
        },
    }


class ScheduleTool:
    """The client side of `schedule`, on the task's own thread."""

    def __init__(self, schedules: ScheduleStore, slack: SlackGateway, clock: Clock) -> None:
        self._schedules = schedules
        self._slack = slack
        self._clock = clock
        self.definition = definition(schedules.limits)

    async def run(self, call: ToolCall) -> ToolResult:
        """Run one call; bad input and refusals are error results the model reads (Redis errors and a lost lease
        propagate: the task is retried or goes on elsewhere)."""
        action = call.input.get("action")
        try:
            if action == "create":
                return ToolResult(await self._create(call))
            if action == "list":
                return ToolResult(await self._list(call))
            if action == "cancel":
                return await self._cancel(call)
            if action == "renew":
                return await self._renew(call)
        except (ScheduleRefused, BadTime, BadInput) as exc:
            return ToolResult(str(exc), is_error=True)
        except (ValueError, OverflowError) as exc:  # a date or number past what Python's datetime or Redis take
            log.info("schedule tool: input out of range (%s)", type(exc).__name__)
            return ToolResult("A time or number in that request is out of range: use a nearer date.", is_error=True)
        return ToolResult(f"Unknown action {str(action)[:40]!r}: use create, list, cancel or renew.", is_error=True)

    async def _zone(self, call: ToolCall) -> Zone:
        task = call.task
        return Zone.of(await self._slack.time_zone(task.thread.team_id, task.user_id))

    async def _create(self, call: ToolCall) -> str:
        zone, now = await self._zone(call), self._clock.now()
        spec = spec_of(call, zone, now)
        floor = self._schedules.limits.min_interval
        if call.task.kind is TaskKind.SCHEDULED and spec.every is None and spec.cron is None and spec.at - now < floor:
            # A run that schedules its own next one-off at once would loop at model speed: one-offs made by a
            # scheduled run keep the minimum interval a recurring schedule has.
            raise BadInput(
                f"A follow-up made from a scheduled run must be at least {_minutes(floor)} ahead; "
                "or make a recurring schedule."
            )
        made = await self._schedules.create(spec, now, call.lease, schedule_id=call_schedule_id(call))
        return f"Scheduled {describe(made, zone)}"

    async def _list(self, call: ToolCall) -> str:
        zone = await self._zone(call)
        found = await self._schedules.list_thread(call.task.thread)
        if not found:
            return "This thread has no schedules."
        lines = [f"This thread's schedules ({len(found)} of at most {self._schedules.limits.per_thread}):"]
        lines += [f"- {describe(schedule, zone)}" for schedule in found]
        return "\n".join(lines)

    async def _renew(self, call: ToolCall) -> ToolResult:
        """A recurring schedule of this thread lives SCHEDULE_MAX_LIFETIME_DAYS from now (up to its own end)."""
        schedule_id = str(call.input.get("schedule_id") or "").strip()
        thread = call.task.thread
        valid = schedule_id.isalnum() and len(schedule_id) <= 40
        renewed = await self._schedules.renew(thread, schedule_id, self._clock.now()) if valid else None
        if renewed is None or not renewed.recurring:
            return ToolResult(f"This thread has no recurring schedule {schedule_id[:40]} to renew.", is_error=True)
        return ToolResult(f"Renewed {describe(renewed, await self._zone(call))}")

    async def _cancel(self, call: ToolCall) -> ToolResult:
        schedule_id = str(call.input.get("schedule_id") or "").strip()
        if not schedule_id.isalnum() or len(schedule_id) > 40:
            return ToolResult("Say which schedule to cancel: its schedule_id (action=list shows them).", True)
        reason = str(call.input.get("reason") or "").strip()[:MAX_REASON_CHARS]
        thread = call.task.thread
        if not await self._schedules.cancel(thread, schedule_id):  # (another thread's schedule is not cancelled)
            return ToolResult(
                f"This thread has no active schedule {schedule_id} (it ended, or was cancelled): nothing to cancel.",
                is_error=True,
            )
        log.info("schedule %s cancelled by its thread's agent", schedule_id)
        return ToolResult(f"Cancelled schedule {schedule_id}" + (f" ({reason})." if reason else "."))


class BadInput(ValueError):
    """Input the tool cannot use; str() says why, for the model."""


def call_schedule_id(call: ToolCall) -> str:
    """The id of the schedule a create call makes: the same each time that call is run."""
    seed = f"{call.task.thread.encode()}|{call.task.task_id}|{call.tool_use_id}"
    return hashlib.sha256(seed.encode()).hexdigest()[:10]


def spec_of(call: ToolCall, zone: Zone, now: float) -> ScheduleSpec:
    """What a create call asks for, checked (the store checks the limits)."""
    given = call.input
    note = str(given.get("note") or "").strip()
    if not note:
        raise BadInput("A schedule needs a note: what to do when it runs.")
    if len(note) > MAX_NOTE_CHARS:
        raise BadInput(f"The note is too long: at most {MAX_NOTE_CHARS:,} characters.")
    every, cron = _number(given, "every_minutes"), given.get("cron")
    if every is not None and cron is not None:
        raise BadInput("Give every_minutes or cron, not both.")
    if cron is not None and (not isinstance(cron, str) or not cron.strip() or len(cron) > MAX_CRON_CHARS):
        raise BadInput(f"cron must be a cron expression like '0 9 * * 1-5' (at most {MAX_CRON_CHARS} characters).")
    at = _start(given, zone, now)
    recurring = every is not None or cron is not None
    if every is not None and every <= 0:
        raise BadInput("every_minutes must be more than 0.")
    if at is None and not recurring:
        raise BadInput("Say when: `at` (a date-time) or `in_minutes`, or make it recurring.")
    if at is None:  # a recurring one without a start: its first period (every) or its next cron time
        at = now + every * MINUTE if every is not None else now
    count, until, until_goal = given.get("count"), given.get("until"), given.get("until_goal") is True
    if not recurring and (count is not None or until is not None or until_goal):
        raise BadInput("count, until and until_goal end a recurring schedule; this one runs once.")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise BadInput("count must be a whole number of runs, at least 1.")
    return ScheduleSpec(
        thread=call.task.thread,
        at=at,
        note=note,
        created_by=call.task.user_id,
        every=every * MINUTE if every is not None else None,
        count=count,
        until=parse_local(str(until), zone) if until is not None else None,
        until_goal=until_goal,
        cron=" ".join(str(cron).split()) if cron is not None else None,
        tz=zone.iana,
    )


def _start(given: dict[str, Any], zone: Zone, now: float) -> float | None:
    at, delay = given.get("at"), _number(given, "in_minutes")
    if at is not None and delay is not None:
        raise BadInput("Give at or in_minutes, not both.")
    if delay is not None:
        if delay < 0:
            raise BadInput("in_minutes cannot be negative.")
        return now + delay * MINUTE
    if at is None:
        return None
    start = parse_local(str(at), zone)
    if start < now - MINUTE:
        raise BadInput(f"{at} is in the past (it is {shown(now, zone)} now).")
    return start


def _number(given: dict[str, Any], name: str) -> float | None:
    value = given.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(f"{name} must be a number.")
    if abs(value) > MAX_MINUTES:
        raise BadInput(f"{name} must be at most {MAX_MINUTES:,} (a year).")
    return float(value)


def describe(schedule: Schedule, zone: Zone) -> str:
    """One schedule as a result line: id, how it recurs and ends, next run, note."""
    if schedule.kind == "every" and schedule.every is not None:
        how = f"every {_minutes(schedule.every)}"
    elif schedule.cron is not None:
        how = f"cron {schedule.cron!r} in {schedule.tz} ({explain(schedule.cron)})"
    else:
        how = "once"
    ends = []
    if schedule.recurring:
        if schedule.count is not None:
            ends.append(f"after {schedule.count} runs ({schedule.fired} so far)")
        if schedule.until_goal:
            ends.append("when you cancel it with the goal met")
        ends.append(f"at the latest {shown(schedule.ends_at, zone)}")
    parts = [f"{schedule.schedule_id}: {how}"]
    if ends:
        parts.append("ends " + ", or ".join(ends))
    parts.append("PAUSED after failing runs" if schedule.paused else f"next run {shown(schedule.next_at, zone)}")
    note = schedule.note if len(schedule.note) <= 200 else schedule.note[:199] + "…"
    return "; ".join(parts) + f". Note: {note}"


def _minutes(seconds: float) -> str:
    minutes = seconds / MINUTE
    return "minute" if minutes == 1 else f"{minutes:g} minutes"
