"""The controls built from the settings: the gate's rate limits come from the limits store, read at most every 5 s."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.runtime.controls import RATE_LIMITS_SECONDS, StoredRateLimits, limit_defaults
from bot.tasks.gate import RateLimits
from store.limits import LimitStore
from tests.fakes import FakeSlack
from tests.unit.handlers.scenario import settings_for


async def test_the_gate_reads_the_settings_then_an_admins_override_once_it_is_due(
    slack: FakeSlack, redis: Redis
) -> None:
    """The settings' rate limits hold until an admin overrides one; a process sees the override once its copy of the
    workspace's limits is RATE_LIMITS_SECONDS old, and other workspaces keep the settings."""
    settings = settings_for(slack, rate_limit_per_user=5, max_bot_turns_per_thread=20, daily_budget_usd_per_user=3)
    defaults = limit_defaults(settings)
    assert (defaults.user_per_minute, defaults.bot_turns_per_thread, defaults.user_daily_usd) == (5, 20, 3.0)
    store, now = LimitStore(redis, defaults), [100.0]
    source = StoredRateLimits(store, clock=lambda: now[0])
    assert await source.limits("T1") == RateLimits(user_per_minute=5, thread_per_minute=0, bot_turns_per_thread=20)
    await store.set("T1", "user_per_minute", 1)
    now[0] += RATE_LIMITS_SECONDS - 0.1
    assert (await source.limits("T1")).user_per_minute == 5  # not read again yet: no Redis call at every mention
    now[0] += 0.2
    assert (await source.limits("T1")).user_per_minute == 1
    assert (await source.limits("T2")).user_per_minute == 5
