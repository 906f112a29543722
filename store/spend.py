"""What a workspace spends on Claude a day, per person, per channel and in all, against its daily budgets.

Before a model call its worst-case cost is reserved: one script checks the three counters against their limits and,
if every one has room, adds the estimate to all three, so two calls racing cannot both take the last dollar.
After the call the reservation is settled: the difference between the real cost and the estimate is added. A
process that dies between the two leaves the estimate counted (a little too much, never too little). Amounts
are whole micro-dollars, as the usage counters keep them (store/models.py, Usage.cost_microusd).

Days are UTC days: every counter of a day is in one hash of that day (store/keys.py, `spend`), which expires a
day after the day ends. A call reserved before midnight is settled in the day it was reserved in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from store import decode, keys
from store.connection import RedisClient

MICRO = 1_000_000
# KEYS[1] = the day's spend hash; ARGV[1] = the estimate, ARGV[2] = the hash's expiry (unix seconds), then pairs
# (field, limit in micro-dollars; 0 = no limit). Returns 0 once the estimate is reserved in every field, or the
# 1-based number of the first pair whose spend plus the estimate would pass its limit (nothing is reserved then).
_RESERVE = """
local estimate = tonumber(ARGV[1])
local fields = {}
for i = 3, #ARGV, 2 do
    local limit = tonumber(ARGV[i + 1])
    local spent = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
    if limit > 0 and spent + estimate > limit then
        return (i - 1) / 2
    end
    table.insert(fields, ARGV[i])
end
for _, field in ipairs(fields) do
    redis.call('HINCRBY', KEYS[1], field, estimate)
end
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 0
"""
# KEYS[1] = the day's spend hash; ARGV[1] = the amount to add (negative: an estimate handed back), ARGV[2] = the
# hash's expiry, ARGV[3...] = the fields to add it to.
_ADD = """
for i = 3, #ARGV do
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[1])
end
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 0
"""


class Scope(StrEnum):
    """Whose spend a budget limits."""

    USER = "user"
    CHANNEL = "channel"
    WORKSPACE = "workspace"


@dataclass(frozen=True)
class Payer:
    """Who a model call is spent for: the person who asked, in their channel of their workspace."""

    team_id: str
    channel_id: str
    user_id: str

    def fields(self) -> dict[Scope, str]:
        """The spend hash's field of each scope."""
        return {
            Scope.USER: f"user:{self.user_id}",
            Scope.CHANNEL: f"channel:{self.channel_id}",
            Scope.WORKSPACE: "team",
        }


@dataclass(frozen=True)
class Budgets:
    """The daily budgets in micro-dollars by scope; 0 means none."""

    user: int = 0
    channel: int = 0
    workspace: int = 0

    @property
    def none(self) -> bool:
        """Whether no scope has a budget (nothing to hold a call against: its cost is only counted)."""
        return not (self.user or self.channel or self.workspace)

    def of(self, scope: Scope) -> int:
        """The budget of `scope`."""
        return {Scope.USER: self.user, Scope.CHANNEL: self.channel, Scope.WORKSPACE: self.workspace}[scope]

    @classmethod
    def from_dollars(cls, user: float, channel: float, workspace: float) -> Budgets:
        """Budgets given in US dollars."""
        return cls(round(user * MICRO), round(channel * MICRO), round(workspace * MICRO))


@dataclass(frozen=True)
class Reservation:
    """An estimate held against the budgets of one day until the call it is for is settled."""

    payer: Payer
    day: str
    estimate: int


@dataclass(frozen=True)
class Spent:
    """What was spent today in micro-dollars, by scope."""

    day: str
    user: int = 0
    channel: int = 0
    workspace: int = 0

    def of(self, scope: Scope) -> int:
        """The spend of `scope`."""
        return {Scope.USER: self.user, Scope.CHANNEL: self.channel, Scope.WORKSPACE: self.workspace}[scope]


def utc_day(now: float) -> str:
    """The UTC day of a unix time, as YYYY-MM-DD."""
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d")


def next_midnight(now: float) -> float:
    """The unix time the UTC day of `now` ends (and every budget starts afresh)."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()


class SpendStore:
    """Reserves, settles and reads a workspace's daily spend."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE)
        self._add_script = redis.register_script(_ADD)

    async def reserve(self, payer: Payer, estimate: int, budgets: Budgets, now: float) -> Reservation | Scope:
        """Hold `estimate` against the payer's three budgets of today, or say which budget it would pass (nothing is
        held then)."""
        fields = payer.fields()
        args: list[str | int] = [max(0, estimate), int(next_midnight(now)) + keys.SPEND_TTL]
        order = list(Scope)
        for scope in order:
            args += [fields[scope], budgets.of(scope)]
        day = utc_day(now)
        passed = int(await self._reserve(keys=[keys.spend(payer.team_id, day)], args=args))
        if passed:
            return order[passed - 1]
        return Reservation(payer, day, max(0, estimate))

    async def settle(self, reservation: Reservation, cost: int) -> None:
        """Replace the reservation's estimate by the call's real cost (0 for a call that was never billed)."""
        if cost != reservation.estimate:
            await self._add(reservation.payer, reservation.day, cost - reservation.estimate)

    async def add(self, payer: Payer, cost: int, now: float) -> None:
        """Count a cost nothing was reserved for (a summary made after the answer)."""
        if cost > 0:
            await self._add(payer, utc_day(now), cost)

    async def _add(self, payer: Payer, day: str, amount: int) -> None:
        midnight = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp() + keys.DAY
        args: list[str | int] = [amount, int(midnight) + keys.SPEND_TTL, *payer.fields().values()]
        await self._add_script(keys=[keys.spend(payer.team_id, day)], args=args)

    async def spent(self, payer: Payer, now: float) -> Spent:
        """What the payer, their channel and their workspace have spent today (never below zero)."""
        day = utc_day(now)
        fields = payer.fields()
        values = await self._redis.hmget(keys.spend(payer.team_id, day), [fields[scope] for scope in Scope])
        user, channel, workspace = (max(0, int(decode.text(value))) if value is not None else 0 for value in values)
        return Spent(day, user, channel, workspace)
