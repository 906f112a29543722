"""The gate on its own, with a clock the test moves: windows that lift, waits as people read them."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.tasks.gate import AllowLists, FixedLimits, Gate, RateLimits, describe_wait
from bot.tasks.intake import IncomingMessage
from store.rate_limits import RateLimiter


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def message(n: int, *, user: str = "U0ALICE", from_bot: bool = False) -> IncomingMessage:
    ts = f"1800000000.{n:06d}"
    return IncomingMessage(f"Ev{n}", "T1", "C1", user, "<@UBOT> hi", ts, None, False, from_bot=from_bot)


def gate(redis: Redis, clock: Clock, limits: RateLimits) -> Gate:
    return Gate(RateLimiter(redis), AllowLists(), FixedLimits(limits), clock=clock)


async def test_the_rate_limit_lifts_after_its_window(redis: Redis) -> None:
    """Two mentions fill a limit of two a minute; the third is refused with the wait until the first is a minute
    old, and is admitted once that much time has passed."""
    clock = Clock()
    door = gate(redis, clock, RateLimits(user_per_minute=2))
    assert (await door.admit(message(1))).refusal is None
    clock.now += 15
    assert (await door.admit(message(2))).refusal is None
    clock.now += 5
    refusal = (await door.admit(message(3))).refusal
    assert refusal is not None and refusal.reason == "rate_limit"
    assert refusal.notice == "You've reached my limit of 2 mentions a minute. Try again in 40 s."
    clock.now += 40
    assert (await door.admit(message(3))).refusal is None


async def test_a_person_is_told_once_per_wait(redis: Redis) -> None:
    """Refusals during one wait say nothing more; once the wait the notice announced is over, the next refusal
    tells again."""
    clock = Clock()
    door = gate(redis, clock, RateLimits(user_per_minute=1))
    assert (await door.admit(message(1))).refusal is None
    clock.now += 30
    notices = []
    for n in (2, 3):
        refusal = (await door.admit(message(n))).refusal
        assert refusal is not None
        notices.append(refusal.notice)
    assert notices[0] is not None and notices[1] is None
    assert (await redis.pttl("agent:T1:told:rate:U0ALICE")) <= 30_000


async def test_a_refusal_by_one_limit_gives_back_the_slot_of_the_other(redis: Redis) -> None:
    """A mention over the thread limit is not counted against its writer's own limit."""
    clock = Clock()
    door = gate(redis, clock, RateLimits(user_per_minute=5, thread_per_minute=1))
    first = message(1)
    assert (await door.admit(first)).refusal is None
    same_thread = IncomingMessage("Ev2", "T1", "C1", "U0ALICE", "hi", "1800000001.000000", first.ts, False)
    refusal = (await door.admit(same_thread)).refusal
    assert refusal is not None and refusal.notice is not None and refusal.notice.startswith("This thread")
    assert await redis.zrange("agent:T1:rate:user:U0ALICE", 0, -1) == ["Ev1"]


async def test_bot_turns_count_per_thread_per_hour(redis: Redis) -> None:
    """An allowed bot's mentions in a thread are refused past the limit for the rest of the hour, not after a
    minute."""
    clock = Clock()
    door = gate(redis, clock, RateLimits(bot_turns_per_thread=1))
    parent = "1800000000.000001"

    def bot_mention(n: int) -> IncomingMessage:
        return IncomingMessage(
            f"Ev{n}", "T1", "C1", "U0BOT2", "hi", f"1800000001.{n:06d}", parent, False, from_bot=True
        )

    assert (await door.admit(bot_mention(1))).refusal is None
    clock.now += 120
    refusal = (await door.admit(bot_mention(2))).refusal
    assert refusal is not None and refusal.reason == "bot_turns" and refusal.notice is not None
    assert "try again in 58 min" in refusal.notice
    clock.now += 3480
    assert (await door.admit(bot_mention(3))).refusal is None


def test_waits_read_as_seconds_then_minutes() -> None:
    """Waits are rounded up: never "0 s", seconds under two minutes, whole minutes above."""
    assert [describe_wait(ms) for ms in (1, 999, 1_001, 119_000, 120_000, 3_540_001)] == [
        "1 s",
        "1 s",
        "2 s",
        "119 s",
        "2 min",
        "60 min",
    ]
