"""The operator's controls built from Settings: the bot's admins, the limits in force, and the daily budgets."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from bot.runtime.settings import Settings
from bot.tasks.admins import Admins
from bot.tasks.budgets import BudgetGuard
from bot.tasks.gate import RateLimits
from handlers.agent_command import Controls
from handlers.gateway import WebApiGateway
from store.admin_roles import AdminRoleCache
from store.connection import RedisClient
from store.limits import Limits, LimitStore
from store.spend import SpendStore

# How long a process trusts a workspace's rate limits it read: the gate reads them at every mention, before the
# acknowledgement, and must not cost a Redis round trip each time; an admin's change reaches every process this late.
RATE_LIMITS_SECONDS = 5.0
RATE_LIMITS_KEPT = 10_000  # workspaces whose limits a process keeps, the least recently used dropped first


def limit_defaults(settings: Settings) -> Limits:
    """The limits the settings give, before any admin's override."""
    return Limits(
        user_daily_usd=settings.daily_budget_usd_per_user,
        channel_daily_usd=settings.daily_budget_usd_per_channel,
        workspace_daily_usd=settings.daily_budget_usd_per_workspace,
        user_per_minute=settings.rate_limit_per_user,
        thread_per_minute=settings.rate_limit_per_thread,
        bot_turns_per_thread=settings.max_bot_turns_per_thread,
    )


class StoredRateLimits:
    """The gate's LimitSource (bot/tasks/gate.py) on the limits store: the settings, overridden by `/agent limits`,
    each workspace's read at most every RATE_LIMITS_SECONDS."""

    def __init__(self, store: LimitStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._kept: OrderedDict[str, tuple[float, RateLimits]] = OrderedDict()

    async def limits(self, team_id: str) -> RateLimits:
        """The rate limits in force in the workspace."""
        kept = self._kept.get(team_id)
        if kept is not None and self._clock() - kept[0] < RATE_LIMITS_SECONDS:
            return kept[1]
        limits = await self._store.effective(team_id)
        rates = RateLimits(limits.user_per_minute, limits.thread_per_minute, limits.bot_turns_per_thread)
        self._kept[team_id] = (self._clock(), rates)
        self._kept.move_to_end(team_id)
        while len(self._kept) > RATE_LIMITS_KEPT:
            self._kept.popitem(last=False)
        return rates


def build_budget_guard(settings: Settings, redis: RedisClient) -> BudgetGuard:
    """The daily budgets every answer's model calls are held against."""
    return BudgetGuard(
        LimitStore(redis, limit_defaults(settings)), SpendStore(redis), cache_ttl=settings.prompt_cache_ttl
    )


def build_controls(settings: Settings, redis: RedisClient, gateway: WebApiGateway) -> Controls:
    """What `/agent` needs to decide who may do what, and to show and change the limits."""
    admins = Admins(
        AdminRoleCache(redis),
        gateway,
        gateway,
        admin_ids=settings.admin_ids,
        workspace_admins=settings.workspace_admins_are_admins,
    )
    return Controls(admins, LimitStore(redis, limit_defaults(settings)), SpendStore(redis))
