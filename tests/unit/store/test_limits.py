"""The limits in force: the settings, overridden per workspace by what an admin set."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from store import keys
from store.limits import LIMIT_NAMES, Limits, LimitStore, limit_name, parse_limit

DEFAULTS = Limits(user_daily_usd=2.0, channel_daily_usd=10.0)


async def test_without_overrides_the_settings_hold(redis: Redis) -> None:
    """A workspace nobody changed has the settings' limits, none of them marked as set by an admin."""
    view = await LimitStore(redis, DEFAULTS).view("T1")
    assert view.limits == DEFAULTS and not view.overridden


async def test_an_override_wins_for_its_workspace_only_and_default_brings_the_setting_back(redis: Redis) -> None:
    """A value an admin set replaces the setting in that workspace, others keep the setting; clearing it restores it."""
    store = LimitStore(redis, DEFAULTS)
    await store.set("T1", "user_daily_usd", 5.5)
    await store.set("T1", "workspace_daily_usd", 0)
    view = await store.view("T1")
    assert view.limits == Limits(user_daily_usd=5.5, channel_daily_usd=10.0, workspace_daily_usd=0)
    assert view.overridden == {"user_daily_usd", "workspace_daily_usd"}
    assert (await store.effective("T2")) == DEFAULTS
    await store.clear("T1", "user_daily_usd")
    assert (await store.effective("T1")).user_daily_usd == 2.0
    assert await redis.ttl(keys.limits("T1")) == -1  # an admin's choice does not expire


async def test_a_stored_value_that_does_not_parse_leaves_the_setting(redis: Redis) -> None:
    """A field written by hand (or by a later release) that is not a valid value is ignored, not a crash."""
    await redis.hset(keys.limits("T1"), mapping={"user_daily_usd": "lots", "user_per_minute": "2.5", "other": "1"})
    view = await LimitStore(redis, DEFAULTS).view("T1")
    assert view.limits == DEFAULTS and not view.overridden


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("user_daily_usd", "5", 5.0),
        ("channel_daily_usd", "$0.25", 0.25),
        ("workspace_daily_usd", "off", 0),
        ("user_per_minute", "12", 12),
        ("bot_turns_per_thread", "0", 0),
    ],
)
def test_parse_limit_reads_numbers_dollars_and_off(name: str, text: str, value: float) -> None:
    """Dollar budgets take a number (a $ allowed), counts a whole number; `off` is 0."""
    assert parse_limit(limit_name(name), text) == value


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("user_daily_usd", "-1", "0 or more"),
        ("user_daily_usd", "nan", "0 or more"),
        ("user_daily_usd", "ten", "not a number"),
        ("user_daily_usd", "2000000", "at most"),
        ("user_per_minute", "1.5", "whole number"),
    ],
)
def test_parse_limit_refuses_what_is_not_a_limit(name: str, text: str, why: str) -> None:
    """Negative, non-finite, non-numeric, absurdly large and fractional counts are refused with the reason."""
    with pytest.raises(ValueError, match=why):
        parse_limit(limit_name(name), text)


def test_limit_name_lists_the_names_when_it_knows_none() -> None:
    """An unknown name is refused with the list of the real ones; case does not matter."""
    assert limit_name("USER_DAILY_USD") == "user_daily_usd"
    with pytest.raises(ValueError, match=", ".join(LIMIT_NAMES)):
        limit_name("budget")
