"""SessionTitles against a real Redis: the bot titles a session once, and a person's title is never overwritten."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from store import keys
from store.errors import CorruptRecord
from store.titles import MAX_TITLE_CHARS, SessionTitles, TitleMark
from tests.unit.store.conftest import OTHER, THREAD

TTL = 3600


async def test_the_first_claim_wins_and_every_later_one_is_refused(redis: Redis) -> None:
    """claim_title is True once per thread, even for claims racing each other, and False ever after."""
    titles = SessionTitles(redis, ttl=TTL)
    claims = await asyncio.gather(*(titles.claim_title(THREAD) for _ in range(10)))
    assert claims.count(True) == 1
    assert not await titles.claim_title(THREAD)
    assert await titles.mark(THREAD) == TitleMark("bot")
    assert await titles.claim_title(OTHER)  # each thread has its own


async def test_a_resumed_task_holds_its_own_claim_again(redis: Redis) -> None:
    """With a task id, the claiming task's claim is its own again (a resume after a crash renames once more); any
    other task, or a claim without a task id, is refused."""
    titles = SessionTitles(redis, ttl=TTL)
    assert await titles.claim_title(THREAD, "Ev1")
    assert await titles.claim_title(THREAD, "Ev1")
    assert not await titles.claim_title(THREAD, "Ev2")
    assert not await titles.claim_title(THREAD)
    assert await titles.mark(THREAD) == TitleMark("bot", task_id="Ev1")
    await titles.person_titled(THREAD, "Mine", "U0ALICE")
    assert not await titles.claim_title(THREAD, "Ev1")  # a person's title wins even over the claiming task


async def test_a_released_claim_goes_to_the_next_task_but_a_persons_title_stays(redis: Redis) -> None:
    """release_title after a failed rename lets the next task claim the title; it never removes a person's."""
    titles = SessionTitles(redis, ttl=TTL)
    assert await titles.claim_title(THREAD, "Ev1")
    await titles.release_title(THREAD, "Ev1")
    assert await titles.mark(THREAD) is None
    assert await titles.claim_title(THREAD, "Ev2")
    await titles.release_title(THREAD, "Ev1")  # not Ev1's claim any more: kept
    assert await titles.mark(THREAD) == TitleMark("bot", task_id="Ev2")
    await titles.person_titled(THREAD, "Mine", "U0ALICE")
    await titles.release_title(THREAD, "Ev2")
    assert await titles.mark(THREAD) == TitleMark("person", "Mine", "U0ALICE")


async def test_a_title_a_person_gave_is_never_claimed(redis: Redis) -> None:
    """After agent_session_title_changed the bot never gets to title the session, and the person's title is kept."""
    titles = SessionTitles(redis, ttl=TTL)
    await titles.person_titled(THREAD, "Trip to Lisbon", "U0ALICE")
    assert not await titles.claim_title(THREAD)
    assert await titles.mark(THREAD) == TitleMark("person", "Trip to Lisbon", "U0ALICE")


async def test_a_person_retitling_after_the_bot_is_recorded(redis: Redis) -> None:
    """A person's title replaces the bot's mark (bounded to what Slack keeps), and claims stay refused."""
    titles = SessionTitles(redis, ttl=TTL)
    assert await titles.claim_title(THREAD)
    await titles.person_titled(THREAD, "x" * 500, "U0BOB")
    mark = await titles.mark(THREAD)
    assert mark is not None and mark.by == "person" and len(mark.title) == MAX_TITLE_CHARS
    assert not await titles.claim_title(THREAD)


async def test_the_mark_lives_as_long_as_the_thread_is_used(redis: Redis) -> None:
    """The mark has the agent's TTL, and a refused claim (a later task of the thread) refreshes it."""
    titles = SessionTitles(redis, ttl=TTL)
    await titles.person_titled(THREAD, "Kept", "U0ALICE")
    key = keys.session_title(THREAD)
    assert TTL - 5 <= await redis.ttl(key) <= TTL
    await redis.expire(key, 10)  # nearly expired
    assert not await titles.claim_title(THREAD)
    assert TTL - 5 <= await redis.ttl(key) <= TTL
    assert await titles.mark(THREAD) == TitleMark("person", "Kept", "U0ALICE")


async def test_the_mark_is_one_key_outside_the_shards(redis: Redis) -> None:
    """The mark has no hash tag (so a change of QUEUE_SHARDS leaves it where it is) and is the thread's only key."""
    titles = SessionTitles(redis, ttl=TTL)
    await titles.claim_title(THREAD)
    assert await redis.keys("*") == [f"agent:T1:title:C1:{THREAD.thread_ts}"]


async def test_a_malformed_mark_is_reported(redis: Redis) -> None:
    """A mark that is not what SessionTitles writes raises CorruptRecord, not a KeyError."""
    await redis.set(keys.session_title(THREAD), '{"by": "someone"}')
    with pytest.raises(CorruptRecord):
        await SessionTitles(redis).mark(THREAD)
