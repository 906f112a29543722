"""The limits in force for a workspace: the settings, overridden by what its admins set with `/agent limits`.

Overrides live in one hash per workspace (store/keys.py, `limits`), name -> value; a name without a field takes
its setting. A value of 0 turns that limit off. The daily budgets are US dollars a UTC day; the rate limits are
counts (the gate reads them: mentions a person or a thread may make a minute, bot-triggered turns a thread may
take an hour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Literal

from store import decode, keys
from store.connection import RedisClient

LimitName = Literal[
    "user_daily_usd",
    "channel_daily_usd",
    "workspace_daily_usd",
    "user_per_minute",
    "thread_per_minute",
    "bot_turns_per_thread",
]
DOLLAR_LIMITS: tuple[LimitName, ...] = ("user_daily_usd", "channel_daily_usd", "workspace_daily_usd")
COUNT_LIMITS: tuple[LimitName, ...] = ("user_per_minute", "thread_per_minute", "bot_turns_per_thread")
LIMIT_NAMES: tuple[LimitName, ...] = (*DOLLAR_LIMITS, *COUNT_LIMITS)
# Bounds of what an admin may set: a typo of a few zeros must not become a budget nobody could spend.
MAX_DOLLARS = 1_000_000.0
MAX_COUNT = 100_000

DESCRIPTIONS: dict[LimitName, str] = {
    "user_daily_usd": "daily budget per person, US$",
    "channel_daily_usd": "daily budget per channel, US$",
    "workspace_daily_usd": "daily budget of the workspace, US$",
    "user_per_minute": "mentions per person a minute",
    "thread_per_minute": "mentions per thread a minute",
    "bot_turns_per_thread": "bot-triggered turns per thread an hour",
}


@dataclass(frozen=True)
class Limits:
    """Every limit of a workspace; 0 means off."""

    user_daily_usd: float = 0.0
    channel_daily_usd: float = 0.0
    workspace_daily_usd: float = 0.0
    user_per_minute: int = 0
    thread_per_minute: int = 0
    bot_turns_per_thread: int = 0

    def value(self, name: LimitName) -> float | int:
        """The limit called `name`."""
        value: float | int = getattr(self, name)
        return value


@dataclass(frozen=True)
class LimitsView:
    """The limits in force and which of them an admin set (the others are the settings)."""

    limits: Limits
    overridden: frozenset[LimitName]


def limit_name(text: str) -> LimitName:
    """The limit a word names; ValueError lists the names when it names none."""
    for name in LIMIT_NAMES:
        if text.strip().lower() == name:
            return name
    raise ValueError(f"there is no limit called `{text}`; the limits are {', '.join(LIMIT_NAMES)}")


def parse_limit(name: LimitName, text: str) -> float | int:
    """An admin's value for limit `name`: a number, or "off" (0); ValueError says what is wrong."""
    cleaned = text.strip().lower().removeprefix("$")
    if cleaned == "off":
        return 0
    try:
        number = float(cleaned)
    except ValueError:
        raise ValueError(f"`{text}` is not a number (or `off`)") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError("a limit is a number of 0 or more (0 or `off` turns it off)")
    if name in DOLLAR_LIMITS:
        if number > MAX_DOLLARS:
            raise ValueError(f"a daily budget is at most ${MAX_DOLLARS:,.0f}")
        return round(number, 6)  # micro-dollars: what the spend counters count in
    if number != int(number) or number > MAX_COUNT:
        raise ValueError(f"`{name}` is a whole number of at most {MAX_COUNT:,}")
    return int(number)


class LimitStore:
    """Reads and changes a workspace's limits; `defaults` are the settings' values."""

    def __init__(self, redis: RedisClient, defaults: Limits) -> None:
        self._redis = redis
        self._defaults = defaults

    @property
    def defaults(self) -> Limits:
        """The settings' values."""
        return self._defaults

    async def effective(self, team_id: str) -> Limits:
        """The limits in force for the workspace (the gate reads its rate limits here too)."""
        return (await self.view(team_id)).limits

    async def view(self, team_id: str) -> LimitsView:
        """The limits in force and which of them are overrides; a stored value that no longer parses is ignored."""
        stored = decode.fields(await self._redis.hgetall(keys.limits(team_id)))
        changes: dict[str, float | int] = {}
        for name in LIMIT_NAMES:
            if name in stored:
                try:
                    changes[name] = parse_limit(name, stored[name])
                except ValueError:
                    continue  # written by hand or by a later release: the setting holds
        limits = replace(self._defaults, **changes)  # type: ignore[arg-type]  # names checked against the fields
        return LimitsView(limits, frozenset(name for name in LIMIT_NAMES if name in changes))

    async def set(self, team_id: str, name: LimitName, value: float | int) -> None:
        """Override the setting of `name` for the workspace (0: the limit is off)."""
        await self._redis.hset(keys.limits(team_id), name, repr(value))

    async def clear(self, team_id: str, name: LimitName) -> None:
        """Go back to the setting of `name`."""
        await self._redis.hdel(keys.limits(team_id), name)


assert {field.name for field in fields(Limits)} == set(LIMIT_NAMES)
