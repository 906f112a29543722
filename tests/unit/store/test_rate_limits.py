"""Sliding-window limits and tell-once marks against a real Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from store.rate_limits import COUNTED_BEFORE, RateLimiter

KEY = "agent:T1:rate:user:U1"
MINUTE = 60_000


async def test_a_limit_counts_up_to_its_number_in_a_window(redis: Redis) -> None:
    """Three events fit a limit of three; the fourth is told how long until the oldest is a window old."""
    limiter = RateLimiter(redis)
    for n, now in enumerate((1_000, 2_000, 3_000)):
        assert await limiter.take(KEY, f"Ev{n}", limit=3, window_ms=MINUTE, now_ms=now) == 0
    assert await limiter.take(KEY, "Ev3", limit=3, window_ms=MINUTE, now_ms=10_000) == 1_000 + MINUTE - 10_000
    assert 0 < await redis.pttl(KEY) <= MINUTE


async def test_the_limit_lifts_as_entries_get_a_window_old(redis: Redis) -> None:
    """Once the oldest entry is a window old, one more event counts; the refused one was never counted."""
    limiter = RateLimiter(redis)
    for n, now in enumerate((1_000, 2_000)):
        assert await limiter.take(KEY, f"Ev{n}", limit=2, window_ms=MINUTE, now_ms=now) == 0
    assert await limiter.take(KEY, "Ev2", limit=2, window_ms=MINUTE, now_ms=61_000 - 1) == 1
    assert await limiter.take(KEY, "Ev2", limit=2, window_ms=MINUTE, now_ms=61_000) == 0
    assert await limiter.take(KEY, "Ev3", limit=2, window_ms=MINUTE, now_ms=61_500) == 2_000 + MINUTE - 61_500
    assert await redis.zrange(KEY, 0, -1) == ["Ev1", "Ev2"]


async def test_an_event_counted_before_is_not_counted_again(redis: Redis) -> None:
    """Slack's redelivery of a counted event passes and takes no second slot, even with the log full."""
    limiter = RateLimiter(redis)
    assert await limiter.take(KEY, "Ev1", limit=1, window_ms=MINUTE, now_ms=1_000) == 0
    assert await limiter.take(KEY, "Ev1", limit=1, window_ms=MINUTE, now_ms=5_000) == COUNTED_BEFORE
    assert await redis.zcard(KEY) == 1


async def test_a_lowered_limit_waits_for_enough_entries_to_leave(redis: Redis) -> None:
    """With four entries and a limit lowered to two, the wait lasts until the third oldest leaves the window."""
    limiter = RateLimiter(redis)
    for n in range(4):
        assert await limiter.take(KEY, f"Ev{n}", limit=10, window_ms=MINUTE, now_ms=1_000 * (n + 1)) == 0
    assert await limiter.take(KEY, "Ev9", limit=2, window_ms=MINUTE, now_ms=10_000) == 3_000 + MINUTE - 10_000


async def test_a_given_back_event_frees_its_slot(redis: Redis) -> None:
    """An event given back (refused elsewhere, or a duplicate) no longer counts."""
    limiter = RateLimiter(redis)
    assert await limiter.take(KEY, "Ev1", limit=1, window_ms=MINUTE, now_ms=1_000) == 0
    await limiter.give_back(KEY, "Ev1")
    assert await limiter.take(KEY, "Ev2", limit=1, window_ms=MINUTE, now_ms=2_000) == 0


async def test_a_limit_of_nothing_is_a_mistake(redis: Redis) -> None:
    """A limit of 0 is "no limit", which the caller decides: the store refuses to count against it."""
    with pytest.raises(ValueError, match="positive"):
        await RateLimiter(redis).take(KEY, "Ev1", limit=0, window_ms=MINUTE, now_ms=1)


async def test_a_mark_lets_one_event_tell_and_its_redelivery_too(redis: Redis) -> None:
    """The first event to reach a mark tells (and so does Slack's redelivery of it); another event does not, until
    the mark expires."""
    limiter = RateLimiter(redis)
    mark = "agent:T1:told:rate:U1"
    assert await limiter.tell_once(mark, "Ev1", ttl_ms=MINUTE) is True
    assert await limiter.tell_once(mark, "Ev1", ttl_ms=MINUTE) is True
    assert await limiter.tell_once(mark, "Ev2", ttl_ms=MINUTE) is False
    assert 0 < await redis.pttl(mark) <= MINUTE
    await redis.delete(mark)
    assert await limiter.tell_once(mark, "Ev2", ttl_ms=MINUTE) is True
