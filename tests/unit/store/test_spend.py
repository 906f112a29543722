"""Daily spend: reserved before a call against three budgets at once, settled after, by UTC day."""

from __future__ import annotations

import asyncio
import datetime as dt

from redis.asyncio import Redis

from store import keys
from store.spend import Budgets, Payer, Reservation, Scope, SpendStore, next_midnight, utc_day

ALICE = Payer("T1", "C1", "U1")
BOB = Payer("T1", "C2", "U2")  # same workspace, another channel
NOON = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC).timestamp()


async def test_a_reservation_counts_in_all_three_scopes_and_settles_to_the_real_cost(redis: Redis) -> None:
    """The estimate is added to the person, the channel and the workspace; settling replaces it by the cost."""
    spend = SpendStore(redis)
    held = await spend.reserve(ALICE, 500, Budgets(), NOON)
    assert isinstance(held, Reservation) and held.day == "2026-12-03"
    spent = await spend.spent(ALICE, NOON)
    assert (spent.user, spent.channel, spent.workspace) == (500, 500, 500)
    await spend.settle(held, 120)
    spent = await spend.spent(BOB, NOON)
    assert (spent.user, spent.channel, spent.workspace) == (0, 0, 120)
    assert (await spend.spent(ALICE, NOON)).user == 120


async def test_a_call_that_would_pass_a_budget_is_refused_and_holds_nothing(redis: Redis) -> None:
    """The first budget the estimate would pass is named, and no counter moves."""
    spend = SpendStore(redis)
    await spend.settle(await _held(spend, ALICE, 0), 900)
    assert await spend.reserve(ALICE, 200, Budgets(user=1000), NOON) is Scope.USER
    assert await spend.reserve(BOB, 200, Budgets(user=1000, channel=0, workspace=1000), NOON) is Scope.WORKSPACE
    assert await spend.reserve(BOB, 100, Budgets(user=1000, workspace=1000), NOON) != Scope.WORKSPACE  # fits exactly
    spent = await spend.spent(ALICE, NOON)
    assert (spent.user, spent.workspace) == (900, 1000)


async def test_racing_reservations_never_pass_the_budget_together(redis: Redis) -> None:
    """Of twenty calls racing for a budget with room for five, five are held: the check and the hold are one step."""
    spend = SpendStore(redis)
    results = await asyncio.gather(*(spend.reserve(ALICE, 100, Budgets(channel=500), NOON) for _ in range(20)))
    assert sum(isinstance(result, Reservation) for result in results) == 5
    assert (await spend.spent(ALICE, NOON)).channel == 500


async def test_days_are_utc_days_and_their_counters_expire_a_day_after(redis: Redis) -> None:
    """Spend of one UTC day is not seen the next; a call held before midnight settles in its own day; the day's
    hash lives until a day after its end."""
    spend = SpendStore(redis)
    late = next_midnight(NOON) - 1
    held = await _held(spend, ALICE, 300, now=late)
    tomorrow = next_midnight(NOON) + 1
    assert utc_day(tomorrow) == "2026-12-04" and (await spend.spent(ALICE, tomorrow)).user == 0
    await spend.settle(held, 50)
    assert (await spend.spent(ALICE, late)).user == 50 and (await spend.spent(ALICE, tomorrow)).user == 0
    expires = await redis.expiretime(keys.spend("T1", "2026-12-03"))
    assert expires == int(next_midnight(NOON)) + keys.SPEND_TTL


async def test_a_failed_call_hands_its_estimate_back_and_an_unheld_cost_is_added(redis: Redis) -> None:
    """Settling to 0 removes the hold; add() counts a cost made without one (a summary)."""
    spend = SpendStore(redis)
    await spend.settle(await _held(spend, ALICE, 400), 0)
    await spend.add(ALICE, 70, NOON)
    assert (await spend.spent(ALICE, NOON)).user == 70


async def _held(spend: SpendStore, payer: Payer, estimate: int, now: float = NOON) -> Reservation:
    held = await spend.reserve(payer, estimate, Budgets(), now)
    assert isinstance(held, Reservation)
    return held
