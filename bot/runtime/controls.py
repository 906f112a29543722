"""The operator's controls built from Settings: the bot's admins, the limits in force, and the daily budgets."""

from __future__ import annotations

from bot.runtime.settings import Settings
from bot.tasks.admins import Admins
from bot.tasks.budgets import BudgetGuard
from handlers.agent_command import Controls
from handlers.gateway import WebApiGateway
from store.admin_roles import AdminRoleCache
from store.connection import RedisClient
from store.limits import Limits, LimitStore
from store.spend import SpendStore


def limit_defaults(settings: Settings) -> Limits:
    """The limits the settings give, before any admin's override (the rate limits are the gate's to fill)."""
    return Limits(
        user_daily_usd=settings.daily_budget_usd_per_user,
        channel_daily_usd=settings.daily_budget_usd_per_channel,
        workspace_daily_usd=settings.daily_budget_usd_per_workspace,
    )


def build_budget_guard(settings: Settings, redis: RedisClient) -> BudgetGuard:
    """The daily budgets every answer's model calls are held against."""
    return BudgetGuard(LimitStore(redis, limit_defaults(settings)), SpendStore(redis))


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
