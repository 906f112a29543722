"""The daily budgets as answers meet them: refused up front once used up, each call's worst case held first."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from redis.asyncio import Redis

from bot.agent.context import CacheTtl
from bot.core.errors import OverBudget
from bot.tasks.budgets import BudgetGuard, dollars, over_budget_message, until
from store.limits import Limits, LimitStore
from store.models import Task, TaskKind, ThreadRef, Usage
from store.spend import Payer, Scope, SpendStore

TEN_PAST_SIX = dt.datetime(2026, 12, 3, 18, 10, tzinfo=dt.UTC).timestamp()
TASK = Task("Ev1", TaskKind.ANSWER, ThreadRef("T1", "C1", "1.000001"), "hi", "U1", "1.000001", time.time())


def guard(redis: Redis, limits: Limits) -> BudgetGuard:
    return BudgetGuard(LimitStore(redis, limits), SpendStore(redis), clock=lambda: TEN_PAST_SIX)


async def test_nothing_is_refused_or_held_without_budgets_and_the_spend_is_still_counted(redis: Redis) -> None:
    """With every budget off (the default), an answer starts and a call is made without a hold (nothing to hold it
    against: one Redis script less per call); its real cost is counted once it is known."""
    budgets = guard(redis, Limits())
    assert await budgets.refusal(TASK) is None
    settle = await budgets.for_task(TASK).before_call("claude-sonnet-x", 1_000_000, 64_000)
    payer = Payer("T1", "C1", "U1")
    assert (await SpendStore(redis).spent(payer, TEN_PAST_SIX)).workspace == 0  # nothing held
    await settle(Usage(cost_microusd=5))
    assert (await SpendStore(redis).spent(payer, TEN_PAST_SIX)).workspace == 5


async def test_a_used_up_budget_refuses_the_answer_naming_it_and_when_it_resets(redis: Redis) -> None:
    """Once the person's spend reaches their budget, the next answer is refused with the limit, the spend, the
    time left until midnight UTC and who can change it."""
    budgets = guard(redis, Limits(user_daily_usd=0.01))
    await SpendStore(redis).add(Payer("T1", "C9", "U1"), 10_000, TEN_PAST_SIX)  # in another channel: still theirs
    refusal = await budgets.refusal(TASK)
    assert refusal is not None
    assert "your daily budget of $0.0100 a person ($0.0100 spent today)" in refusal
    assert "resets at midnight UTC, in 5 h 50 min" in refusal and "`/agent limits`" in refusal


async def test_a_call_whose_worst_case_does_not_fit_is_refused_before_it_is_made(redis: Redis) -> None:
    """Sonnet at 1,000 tokens in and 16,000 out costs at most $0.246: it fits a $0.25 channel budget once, and the
    second call of the answer is refused as 'stopped here'."""
    task_budget = guard(redis, Limits(channel_daily_usd=0.25)).for_task(TASK)
    await task_budget.before_call("claude-sonnet-5-5", 1_000, 16_000)
    with pytest.raises(OverBudget) as refused:
        await task_budget.before_call("claude-sonnet-5-5", 1_000, 16_000)
    assert refused.value.message.startswith(":money_with_wings: I stopped here: my next step could pass this channel's")


@pytest.mark.parametrize(("cache_ttl", "fits"), [("5m", True), ("1h", False)])
async def test_the_hold_prices_input_at_the_cache_write_rate_of_the_ttl(
    redis: Redis, cache_ttl: CacheTtl, fits: bool
) -> None:
    """100,000 Sonnet input tokens are held at $0.375 with the 5-minute cache (1.25 times $3 a million) and at $0.60
    with the 1-hour one (2 times): a $0.50 budget takes the first and refuses the second."""
    limits = LimitStore(redis, Limits(workspace_daily_usd=0.5))
    budgets = BudgetGuard(limits, SpendStore(redis), clock=lambda: TEN_PAST_SIX, cache_ttl=cache_ttl)
    if fits:
        await budgets.for_task(TASK).before_call("claude-sonnet-5-5", 100_000, 1)
    else:
        with pytest.raises(OverBudget):
            await budgets.for_task(TASK).before_call("claude-sonnet-5-5", 100_000, 1)


async def test_an_admins_override_counts_at_the_next_call(redis: Redis) -> None:
    """A budget raised in Redis (as `/agent limits` does) applies without a restart."""
    budgets = guard(redis, Limits(workspace_daily_usd=0.001))
    with pytest.raises(OverBudget, match=r"this workspace's daily budget of \$0\.0010"):
        await budgets.for_task(TASK).before_call("claude-haiku-5-5", 1_000, 1_000)
    await LimitStore(redis, Limits()).set("T1", "workspace_daily_usd", 1.0)
    await budgets.for_task(TASK).before_call("claude-haiku-5-5", 1_000, 1_000)


def test_amounts_and_durations_read_well() -> None:
    """Dollars show cents from a dollar up and four decimals below; durations hours and minutes."""
    assert (dollars(12_345_678), dollars(1_500), dollars(0)) == ("$12.35", "$0.0015", "$0.00")
    assert until(TEN_PAST_SIX + 3 * 3600 + 60, TEN_PAST_SIX) == "3 h 1 min"
    assert until(TEN_PAST_SIX + 5, TEN_PAST_SIX) == "1 min"
    message = over_budget_message(Scope.WORKSPACE, 2_000_000, 2_100_000, TEN_PAST_SIX, started=False)
    assert message.startswith(":money_with_wings: I can't answer this now: it would pass this workspace's")
