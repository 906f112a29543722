"""OAuthStates against a real Redis: a state is good once, until it expires, and only if it was issued here."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from store import keys
from store.oauth_states import OAuthStates


async def test_a_state_is_consumed_once(redis: Redis) -> None:
    """An issued state is accepted by the first consume only, even among racing ones."""
    states = OAuthStates(redis)
    state = await states.issue(expire_seconds=600)
    assert sum(await asyncio.gather(*(states.consume(state) for _ in range(5)))) == 1
    assert not await states.consume(state)
    assert await redis.keys("*") == []


async def test_states_are_random_and_expire(redis: Redis) -> None:
    """Each state is new, its key lives for expire_seconds, and once expired it is refused."""
    states = OAuthStates(redis)
    first, second = await states.issue(600), await states.issue(1)
    assert first != second and len(first) >= 40
    assert 590 <= await redis.ttl(keys.oauth_state(first)) <= 600
    await redis.pexpire(keys.oauth_state(second), 1)
    await asyncio.sleep(0.01)
    assert not await states.consume(second)
    assert await states.consume(first)


async def test_a_forged_state_is_refused(redis: Redis) -> None:
    """A state never issued, an empty one, or one no issued state could be is refused without touching Redis' keys."""
    states = OAuthStates(redis)
    await states.issue(600)
    for forged in ("never-issued", "", "a:b", "x" * 5000, "*"):
        assert not await states.consume(forged)
    assert len(await redis.keys("*")) == 1


async def test_a_state_must_live_a_positive_time(redis: Redis) -> None:
    """issue refuses a lifetime of zero or less, which Redis would refuse (or never expire) anyway."""
    with pytest.raises(ValueError):
        await OAuthStates(redis).issue(0)
