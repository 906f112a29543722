"""The gate: who may use the bot, and how often, decided at intake before anything is queued or spent.

In order: the allow-lists (ALLOWED_CHANNEL_IDS, ALLOWED_USER_IDS), the per-thread limit on the allowed bots' turns
(MAX_BOT_TURNS_PER_THREAD an hour), and the rate limits per person and per thread (RATE_LIMIT_PER_USER,
RATE_LIMIT_PER_THREAD a minute). A refusal says so once (a day for the allow-lists, once per wait for the limits)
and is never a model call; intake posts what it says as a NOTICE task. Every refusal has a short fixed reason,
the `reason` label of the refused mentions counted at /metrics.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from store import keys
from store.models import ThreadRef
from store.rate_limits import RateLimiter

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = keys.DAY * 1000
DIRECT_MESSAGES = "dm"  # in ALLOWED_CHANNEL_IDS: every direct message with the bot (their ids are per person)

NOT_ALLOWED = "not_allowed"
RATE_LIMIT = "rate_limit"
BOT_TURNS = "bot_turns"
REASONS = (NOT_ALLOWED, RATE_LIMIT, BOT_TURNS)  # the fixed list of the metric's label values


class GatedMessage(Protocol):
    """What the gate reads of a message: intake's IncomingMessage (a protocol: intake imports the gate)."""

    @property
    def event_id(self) -> str: ...
    @property
    def team_id(self) -> str: ...
    @property
    def channel_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def is_direct_message(self) -> bool: ...
    @property
    def from_bot(self) -> bool: ...
    def thread(self) -> ThreadRef:
        """The conversation the message belongs to."""
        ...


@dataclass(frozen=True)
class RateLimits:
    """How often the bot may be asked; 0 means no limit."""

    user_per_minute: int = 0
    thread_per_minute: int = 0
    bot_turns_per_thread: int = 0  # an hour


class LimitSource(Protocol):
    """Where the gate reads a workspace's limits (settings now; Redis overrides set with `/agent limits` later)."""

    async def limits(self, team_id: str) -> RateLimits:
        """The limits in force in the workspace."""
        ...


@dataclass(frozen=True)
class FixedLimits:
    """The same limits everywhere: the settings'."""

    value: RateLimits

    async def limits(self, team_id: str) -> RateLimits:
        """The configured limits, whatever the workspace."""
        return self.value


@dataclass(frozen=True)
class AllowLists:
    """Where and for whom the bot works; an empty list allows all."""

    channels: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    @classmethod
    def of(cls, channels: Collection[str], users: Collection[str]) -> AllowLists:
        """Allow-lists from the settings' names."""
        return cls(frozenset(channels), frozenset(users))

    def channel_allows(self, message: GatedMessage) -> bool:
        """Whether the message's channel (or direct messages, for a DM) is allowed."""
        place = DIRECT_MESSAGES if message.is_direct_message else message.channel_id
        return not self.channels or place in self.channels

    def allow(self, channel_id: str, user_id: str) -> bool:
        """Whether a person's work may run in a conversation (a DM's id starts with D), by both lists."""
        place = DIRECT_MESSAGES if channel_id.startswith("D") else channel_id
        return (not self.channels or place in self.channels) and (not self.users or user_id in self.users)

    def refusal(self, message: GatedMessage) -> str | None:
        """What to tell the message's writer if a list leaves them out, else None."""
        if not self.channel_allows(message):
            where = "in direct messages" if message.is_direct_message else "in this channel"
            return f"Sorry, I'm not enabled {where}, so I can't help here. {_ONCE_A_DAY}"
        # A bot heard at all is in ALLOWED_BOT_IDS, its own allow-list.
        if self.users and not message.from_bot and message.user_id not in self.users:
            return f"Sorry, I'm not enabled for you yet, so I can't help here. {_ONCE_A_DAY}"
        return None


_ONCE_A_DAY = "Whoever runs this app can enable it. (I won't say this again here today.)"


@dataclass(frozen=True)
class Refusal:
    """A mention the gate turned away: why (a fixed word), and what to tell the thread (None: told already)."""

    reason: str
    notice: str | None


@dataclass(frozen=True)
class Admission:
    """The gate's verdict on one event: refused or not, and the logs it was counted in now (to give back)."""

    refusal: Refusal | None = None
    counted_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Limit:
    counts: str  # "bots", "user" or "thread": whose mentions the log counts
    key: str
    limit: int
    window_ms: int


class Gate:
    """Decides whether a mention may become a task, counting it against the limits it is under."""

    def __init__(
        self,
        limiter: RateLimiter,
        allow: AllowLists,
        limits: LimitSource,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = limiter
        self._allow = allow
        self._limits = limits
        self._clock = clock

    async def admit(self, message: GatedMessage, *, counted: bool = True) -> Admission:
        """The verdict on the message's event; `counted`: whether the rate limits apply (not to a `stop`)."""
        refused = self._allow.refusal(message)
        if refused is not None:
            mark = keys.told_not_allowed(message.team_id, message.channel_id, message.user_id)
            return Admission(await self._refusal(NOT_ALLOWED, refused, mark, message.event_id, DAY_MS))
        if not counted:
            return Admission()
        limits = await self._limits.limits(message.team_id)
        checks = self._checks(message, limits)
        if not checks:
            return Admission()  # no limit in force: not a single Redis call
        now_ms = int(self._clock() * 1000)
        # Each log is a key of its own (no shared slot on a cluster): counted concurrently, one round trip's time.
        waits = await asyncio.gather(*(self._take(check, message.event_id, now_ms) for check in checks))
        over = next(((check, wait) for check, wait in zip(checks, waits, strict=True) if wait > 0), None)
        # Only what this delivery counted is given back later: a redelivery never uncounts its first delivery.
        counted_in = tuple(check.key for check, wait in zip(checks, waits, strict=True) if wait == 0)
        if over is None:
            return Admission(counted_in=counted_in)
        await self.give_back(Admission(counted_in=counted_in), message.event_id)
        check, wait_ms = over
        return Admission(await self._over_limit(message, check, wait_ms))

    async def _take(self, check: _Limit, event_id: str, now_ms: int) -> int:
        return await self._limiter.take(
            check.key, event_id, limit=check.limit, window_ms=check.window_ms, now_ms=now_ms
        )

    def channel_allowed(self, message: GatedMessage) -> bool:
        """Whether the message's channel is allowed: outside, not even its thread's other messages are read."""
        return self._allow.channel_allows(message)

    async def give_back(self, admission: Admission, event_id: str) -> None:
        """Uncount an admitted event: refused by another limit, or recorded before (Slack's redelivery)."""
        await asyncio.gather(*(self._limiter.give_back(key, event_id) for key in admission.counted_in))

    def _checks(self, message: GatedMessage, limits: RateLimits) -> list[_Limit]:
        """The limits the message counts against, in the order their refusals take precedence."""
        thread = message.thread()
        checks: list[_Limit] = []
        if message.from_bot and limits.bot_turns_per_thread > 0:
            checks.append(_Limit("bots", keys.bot_turns(thread), limits.bot_turns_per_thread, HOUR_MS))
        if limits.user_per_minute > 0:
            by_user = keys.rate_by_user(message.team_id, message.user_id)
            checks.append(_Limit("user", by_user, limits.user_per_minute, MINUTE_MS))
        if limits.thread_per_minute > 0:
            checks.append(_Limit("thread", keys.rate_by_thread(thread), limits.thread_per_minute, MINUTE_MS))
        return checks

    async def _over_limit(self, message: GatedMessage, check: _Limit, wait_ms: int) -> Refusal:
        wait = describe_wait(wait_ms)
        if check.counts == "bots":
            notice = (
                f"I have answered bots {check.limit} times in this thread in the last hour, so I'm "
                f"not answering bots here for now; they can try again in {wait}. People can still mention me."
            )
            mark = keys.told_bot_turns(message.thread())
            return await self._refusal(BOT_TURNS, notice, mark, message.event_id, wait_ms)
        if check.counts == "user":
            notice = f"You've reached my limit of {check.limit} mentions a minute. Try again in {wait}."
        else:
            notice = f"This thread has reached its limit of {check.limit} mentions a minute. Try again in {wait}."
        mark = keys.told_rate_limited(message.team_id, message.user_id)
        return await self._refusal(RATE_LIMIT, notice, mark, message.event_id, wait_ms)

    async def _refusal(self, reason: str, notice: str, mark: str, event_id: str, ttl_ms: int) -> Refusal:
        tell = await self._limiter.tell_once(mark, event_id, ttl_ms=ttl_ms)
        return Refusal(reason, notice if tell else None)


def describe_wait(wait_ms: int) -> str:
    """A wait as people say it, rounded up: "42 s" under two minutes, else "3 min"."""
    seconds = max(1, math.ceil(wait_ms / 1000))
    return f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} min"
