"""The daily budgets as an answer meets them: refused before it starts, or stopped before a call that would pass one.

A mention whose person, channel or workspace has used up its budget today is answered with that, and no model call
is made. Otherwise each model call of the answer first holds its estimated cost (the request's input tokens, at four
characters a token, at the cache-write price of PROMPT_CACHE_TTL, plus max_tokens at the output price) against the
three budgets (store/spend.py), and settles it to its real cost once made; a call whose hold would pass one is not
made, and the answer ends after the steps it made. The estimate is not a bound: a call's web search or fetch results
add input on Anthropic's side, and text of few characters a token (code, CJK) counts more tokens than estimated, so
the call that crosses a budget can pass it by that much. The limits are read again before each call, so a budget an
admin raises mid-answer counts at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.agent.context import CacheTtl
from bot.agent.loop import Settle
from bot.agent.pricing import cost_usd
from bot.core.errors import OverBudget
from store.limits import Limits, LimitStore
from store.models import Task, Usage
from store.spend import MICRO, Budgets, Payer, Reservation, Scope, SpendStore, next_midnight

WHOSE = {
    Scope.USER: "your daily budget of {limit} a person",
    Scope.CHANNEL: "this channel's daily budget of {limit}",
    Scope.WORKSPACE: "this workspace's daily budget of {limit}",
}


def budgets_of(limits: Limits) -> Budgets:
    """The daily budgets of a workspace's limits, in micro-dollars."""
    return Budgets.from_dollars(limits.user_daily_usd, limits.channel_daily_usd, limits.workspace_daily_usd)


def payer_of(task: Task) -> Payer:
    """Who a task's model calls are spent for."""
    return Payer(task.thread.team_id, task.thread.channel_id, task.user_id)


def dollars(micro: int) -> str:
    """An amount for people: cents, or four decimals below a dollar where cents would read as nothing."""
    amount = micro / MICRO
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:,.4f}"


def until(moment: float, now: float) -> str:
    """How long from `now` to `moment`, in hours and minutes."""
    minutes = max(1, round((moment - now) / 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def over_budget_message(scope: Scope, limit: int, spent: int, now: float, *, started: bool) -> str:
    """What the thread is told: which budget, what was spent of it, when it resets and who can change it."""
    whose = WHOSE[scope].format(limit=dollars(limit))
    what = "I stopped here: my next step could pass" if started else "I can't answer this now: it would pass"
    return (
        f":money_with_wings: {what} {whose} ({dollars(spent)} spent today). It resets at midnight UTC, in "
        f"{until(next_midnight(now), now)}. An admin can change it with `/agent limits`."
    )


class TaskBudget:
    """One answer's CallGuard: holds each model call's worst case against the asker's budgets (bot/agent/loop.py)."""

    def __init__(self, guard: BudgetGuard, payer: Payer, cache_ttl: CacheTtl = "1h") -> None:
        self._guard = guard
        self._payer = payer
        self._cache_ttl = cache_ttl
        self._held = 0

    async def before_call(self, model: str, input_tokens: int, max_tokens: int) -> Settle:
        """Hold the call's worst case, or raise OverBudget naming the budget it would pass."""
        # Every input token at the cache-write price (the dearest an input token is billed at: 2 times the input
        # price for the 1-hour cache, 1.25 for the 5-minute one), max_tokens of output.
        one_hour = self._cache_ttl == "1h"
        worst = cost_usd(
            model,
            input_tokens=0,
            output_tokens=max_tokens,
            cache_write=0 if one_hour else input_tokens,
            cache_write_1h=input_tokens if one_hour else 0,
            cache_read=0,
        )
        settle = await self._guard.hold(self._payer, round(worst * MICRO), started=self._held > 0)
        self._held += 1
        return settle


class BudgetGuard:
    """The workspace's daily budgets, read from the limits in force and counted in Redis."""

    def __init__(
        self,
        limits: LimitStore,
        spend: SpendStore,
        clock: Callable[[], float] = time.time,
        *,
        cache_ttl: CacheTtl = "1h",
    ) -> None:
        self._limits = limits
        self._spend = spend
        self._clock = clock
        self._cache_ttl = cache_ttl

    def for_task(self, task: Task) -> TaskBudget:
        """The guard of one answer's model calls."""
        return TaskBudget(self, payer_of(task), self._cache_ttl)

    async def refusal(self, task: Task) -> str | None:
        """Why the task may not start (a budget of its asker's is used up today), or None."""
        budgets = budgets_of(await self._limits.effective(task.thread.team_id))
        if budgets.none:
            return None
        now = self._clock()
        spent = await self._spend.spent(payer_of(task), now)
        for scope in Scope:
            limit = budgets.of(scope)
            if limit and spent.of(scope) >= limit:
                return over_budget_message(scope, limit, spent.of(scope), now, started=False)
        return None

    async def hold(self, payer: Payer, estimate: int, *, started: bool = False) -> Settle:
        """Hold `estimate` against the payer's budgets and return its settlement, or raise OverBudget."""
        budgets = budgets_of(await self._limits.effective(payer.team_id))
        now = self._clock()
        if budgets.none:  # no budget to check it against: the call's cost is only counted, once it is known
            return self._counted(payer, now)
        held = await self._spend.reserve(payer, estimate, budgets, now)
        if isinstance(held, Scope):
            spent = (await self._spend.spent(payer, now)).of(held)
            raise OverBudget(over_budget_message(held, budgets.of(held), spent, now, started=started))
        return self._settlement(held)

    def _settlement(self, held: Reservation) -> Settle:
        async def settle(usage: Usage | None) -> None:
            await self._spend.settle(held, usage.cost_microusd if usage is not None else 0)

        return settle

    def _counted(self, payer: Payer, now: float) -> Settle:
        async def count(usage: Usage | None) -> None:
            if usage is not None:
                await self._spend.add(payer, usage.cost_microusd, now)

        return count

    async def add(self, task: Task, usage: Usage) -> None:
        """Count model calls made without a hold (the summary that folds a thread's window after an answer)."""
        await self._spend.add(payer_of(task), usage.cost_microusd, self._clock())
