"""The page's schedules and its time machine: what each channel has scheduled, read from the bot's Redis, and buttons
that move the bot's timers forward (its test clock, BOT_TEST_CLOCK_FILE), so that a newcomer can watch a recurring
check run without waiting for it.

Only the timers run on that clock: the messages keep real time. A follow-up can also be made here directly (as the
agent's schedule tool would make it), so that one can be watched with the offline stand-in model too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.core.clock import OffsetClock, advance
from bot.tasks.schedule_text import period
from store.keys import KeySpace
from store.models import ThreadRef
from store.schedule_models import Schedule, ScheduleLimits, ScheduleRefused, ScheduleSpec
from store.schedules import ScheduleStore

from .page_input import CHANNELS, DM_CHANNEL, ME, PageInputError, bad, channel_of, json_object, ts_of

if TYPE_CHECKING:
    from .playground import Playground

log = logging.getLogger(__name__)

Args = dict[str, Any]
MOST_FORWARD = 30 * 86400  # seconds the clock may move in one step: a schedule lives at most 30 days by default
DEMO_NOTE = "Look at this thread again and say briefly what has changed since you last looked."


class SchedulePage:
    """Routes and view of the schedules, for the Playground it belongs to; `attach` once the bot's Redis and clock
    file exist."""

    def __init__(self, playground: Playground) -> None:
        self._playground = playground
        self._redis: Redis | None = None
        self._store: ScheduleStore | None = None
        self._clock_file: Path | None = None

    def attach(self, redis_url: str, clock_file: Path, env: Mapping[str, str]) -> None:
        """Read schedules from the bot's Redis, with the bot's shards and limits, and move its clock file."""
        self._redis = Redis.from_url(redis_url)
        self._store = ScheduleStore(self._redis, KeySpace(_number(env, "QUEUE_SHARDS", 16)), limits_of(env))
        self._clock_file = clock_file

    async def close(self) -> None:
        """Close the connection to the bot's Redis."""
        if self._redis is not None:
            await self._redis.aclose()

    def add_routes(self, app: web.Application) -> None:
        """Move the clock on, and make a follow-up."""
        app.router.add_post("/playground/clock", self._forward)
        app.router.add_post("/playground/schedules", self._create)

    def now(self) -> float:
        """The time the bot's timers run by."""
        return OffsetClock(self._clock_file).now() if self._clock_file else 0.0

    async def view(self, team: str) -> Args | None:
        """The workspace's schedules by channel, soonest first, and the timers' time; None before `attach`."""
        store, clock_file = self._store, self._clock_file
        if store is None or clock_file is None:
            return None
        items: list[Args] = []
        try:
            for channel in (*CHANNELS, DM_CHANNEL):
                items += [_item(schedule) for schedule in await store.list_channel(team, channel)]
        except RedisError as exc:  # the bot's Redis is restarting with it, or gone: show none for now
            log.warning("cannot read the schedules: %s", exc)
        items.sort(key=lambda item: item["next_at"])
        return {"now": self.now(), "offset": OffsetClock(clock_file).offset(), "items": items}

    async def _forward(self, request: web.Request) -> web.Response:
        playground = self._playground
        try:
            seconds = (await json_object(request)).get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= MOST_FORWARD:
                raise PageInputError(f"seconds must be a number from 1 to {MOST_FORWARD}")
        except PageInputError as exc:
            return bad(str(exc))
        if self._clock_file is None:
            return bad("the bot is not running under the playground")
        offset = advance(self._clock_file, float(seconds))
        playground.notify(f"the bot's timers are now {period(offset)} ahead of real time")
        return web.json_response({"ok": True, "offset": offset})

    async def _create(self, request: web.Request) -> web.Response:
        playground, store = self._playground, self._store
        try:
            body = await json_object(request)
            team, channel, thread_ts = (
                playground.workspace_page.team_of(body),
                channel_of(body),
                ts_of(body, "thread_ts"),
            )
            with playground.as_workspace(team):
                if playground.store.get(channel, thread_ts) is None:
                    raise PageInputError(f"no message {thread_ts!r} in that channel")
            every = _minutes(body, "every_minutes")
            after = _minutes(body, "in_minutes") or every or 10.0
            note = body.get("note") or DEMO_NOTE
            if not isinstance(note, str):
                raise PageInputError("note must be text")
        except PageInputError as exc:
            return bad(str(exc))
        if store is None:
            return bad("the bot is not running under the playground")
        now = self.now()
        period_seconds = every * 60 if every is not None else None
        spec = ScheduleSpec(ThreadRef(team, channel, thread_ts), now + after * 60, note, ME[0], every=period_seconds)
        try:
            made = await store.create(spec, now)
        except ScheduleRefused as exc:
            return bad(str(exc))
        playground.changed()
        return web.json_response({"ok": True, "schedule": _item(made)})


def limits_of(env: Mapping[str, str]) -> ScheduleLimits:
    """The bot's schedule limits, as its settings would read them from `env` (the defaults otherwise)."""
    defaults = ScheduleLimits()
    return ScheduleLimits(
        per_thread=_number(env, "SCHEDULES_PER_THREAD", defaults.per_thread),
        per_channel=_number(env, "SCHEDULES_PER_CHANNEL", defaults.per_channel),
        min_interval=float(_number(env, "SCHEDULE_MIN_INTERVAL_SECONDS", int(defaults.min_interval))),
        max_lifetime=86400.0 * _number(env, "SCHEDULE_MAX_LIFETIME_DAYS", int(defaults.max_lifetime // 86400)),
        max_failures=_number(env, "SCHEDULE_MAX_FAILURES", defaults.max_failures),
    )


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    """An integer setting; the default when it is unset or not a number (the bot then refuses to start anyway)."""
    try:
        return int(env.get(name) or default)
    except ValueError:
        return default


def _minutes(body: Args, name: str) -> float | None:
    """An optional number of minutes of the body."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= MOST_FORWARD / 60:
        raise PageInputError(f"{name} must be a number of minutes from 1 to {MOST_FORWARD // 60}")
    return float(value)


def _item(schedule: Schedule) -> Args:
    """A schedule as the page draws it."""
    return {
        "id": schedule.schedule_id,
        "channel": schedule.thread.channel_id,
        "thread_ts": schedule.thread.thread_ts,
        "next_at": schedule.next_at,
        "every": schedule.every,
        "count": schedule.count,
        "until_goal": schedule.until_goal,
        "fired": schedule.fired,
        "paused": schedule.paused,
        "note": schedule.note,
    }
