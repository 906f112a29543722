"""Feedback on answers, against a real Redis: one changeable vote per person per answer, counted per thread, channel
and workspace, bounded, and every key of a vote on its thread's slot."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from store.connection import RedisClient
from store.feedback import (
    MAX_LISTED_DOWN,
    AnswerVote,
    DownVotedAnswer,
    FeedbackCounts,
    FeedbackStore,
    Vote,
    VoteOutcome,
)
from store.journal import TaskJournal
from store.keys import KeySpace
from store.models import TaskStatus, ThreadRef, Turn
from store.tasks import TaskQueue
from tests.integration.redis_cluster import LocalCluster
from tests.unit.store.conftest import ELSEWHERE, SPACE, THREAD, make_groups, make_task

ANSWER = "1700000005.000100"
LATER_ANSWER = "1700000009.000100"
OTHER_TEAM = ThreadRef("T2", "C1", THREAD.thread_ts)
OTHER_CHANNEL = ThreadRef("T1", "C2", THREAD.thread_ts)


async def with_agent(redis: RedisClient, ref: ThreadRef = THREAD, space: KeySpace = SPACE) -> ThreadRef:
    """A thread whose agent has answered once, as a worker leaves it."""
    queue, journal = TaskQueue(redis, space), TaskJournal(redis, space)
    await make_groups(queue)
    await queue.submit(make_task(f"Ev{ref.team_id}{ref.channel_id}{ref.thread_ts}", thread=ref))
    # One shard per read: on a cluster the shards' streams are on different slots.
    [lease] = await queue.claim_new("web.1", [space.shard_of(ref)], count=1, block_ms=10)
    task = await queue.head(ref)
    assert task is not None
    await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q"), Turn("assistant", "a")])
    return ref


def vote(vote: Vote, user: str = "U1", answer_ts: str = ANSWER, thread: ThreadRef = THREAD) -> AnswerVote:
    """A person's vote on an answer."""
    return AnswerVote(thread, answer_ts, user, vote)


async def counts_everywhere(store: FeedbackStore, ref: ThreadRef = THREAD) -> list[FeedbackCounts]:
    """The thread's, its channel's and its workspace's counts."""
    return [
        (await store.thread_feedback(ref)).counts,
        await store.channel_feedback(ref.team_id, ref.channel_id),
        await store.team_feedback(ref.team_id),
    ]


@pytest.fixture
def store(redis: Redis) -> FeedbackStore:
    """The feedback store of the default shard count."""
    return FeedbackStore(redis, SPACE)


async def test_a_first_vote_counts_in_the_thread_channel_and_workspace(redis: Redis, store: FeedbackStore) -> None:
    """A thumbs up is one up in the thread, its channel and its workspace, and is stored as the person's vote."""
    await with_agent(redis)
    assert await store.record(vote(Vote.UP)) is VoteOutcome.NEW
    assert await counts_everywhere(store) == [FeedbackCounts(up=1, down=0)] * 3
    assert await redis.hgetall(SPACE.answer_votes(THREAD)) == {f"{ANSWER} U1": "+"}


async def test_the_same_button_twice_changes_nothing(redis: Redis, store: FeedbackStore) -> None:
    """A second click of the same button is not a second vote."""
    await with_agent(redis)
    await store.record(vote(Vote.DOWN))
    assert await store.record(vote(Vote.DOWN)) is VoteOutcome.UNCHANGED
    assert await counts_everywhere(store) == [FeedbackCounts(up=0, down=1)] * 3


async def test_the_other_button_moves_the_vote(redis: Redis, store: FeedbackStore) -> None:
    """A person who changes their mind moves their vote: it counts on the new side only, everywhere."""
    await with_agent(redis)
    await store.record(vote(Vote.UP))
    assert await store.record(vote(Vote.DOWN)) is VoteOutcome.CHANGED
    assert await counts_everywhere(store) == [FeedbackCounts(up=0, down=1)] * 3
    assert await store.record(vote(Vote.UP)) is VoteOutcome.CHANGED
    assert await counts_everywhere(store) == [FeedbackCounts(up=1, down=0)] * 3


async def test_people_and_answers_each_have_their_own_vote(redis: Redis, store: FeedbackStore) -> None:
    """Two people on one answer are two votes; one person on two answers is two votes."""
    await with_agent(redis)
    await store.record(vote(Vote.UP, "U1"))
    await store.record(vote(Vote.DOWN, "U2"))
    await store.record(vote(Vote.DOWN, "U1", LATER_ANSWER))
    assert await counts_everywhere(store) == [FeedbackCounts(up=1, down=2)] * 3
    assert (await store.thread_feedback(THREAD)).counts.rate == pytest.approx(1 / 3)


async def test_channels_and_workspaces_sum_their_threads_across_shards(redis: Redis, store: FeedbackStore) -> None:
    """A channel's counts are its threads' in every shard; a workspace's are its channels'; others stay apart."""
    for ref in (THREAD, ELSEWHERE, OTHER_CHANNEL, OTHER_TEAM):
        await with_agent(redis, ref)
    assert SPACE.shard_of(THREAD) != SPACE.shard_of(ELSEWHERE)
    await store.record(vote(Vote.UP, thread=THREAD))
    await store.record(vote(Vote.DOWN, thread=ELSEWHERE))
    await store.record(vote(Vote.UP, thread=OTHER_CHANNEL))
    await store.record(vote(Vote.DOWN, thread=OTHER_TEAM))
    assert await store.channel_feedback("T1", "C1") == FeedbackCounts(up=1, down=1)
    assert await store.channel_feedback("T1", "C2") == FeedbackCounts(up=1, down=0)
    assert await store.team_feedback("T1") == FeedbackCounts(up=2, down=1)
    assert await store.team_feedback("T2") == FeedbackCounts(up=0, down=1)
    assert await store.team_feedback("T3") == FeedbackCounts() and FeedbackCounts().rate is None


async def test_a_thread_without_an_agent_stores_nothing(redis: Redis, store: FeedbackStore) -> None:
    """A vote on a thread that has no agent (never mentioned, reset or expired) is refused and leaves no key."""
    assert await store.record(vote(Vote.UP)) is VoteOutcome.NO_AGENT
    assert await redis.dbsize() == 0


async def test_a_full_thread_refuses_new_votes_but_takes_changes(redis: Redis) -> None:
    """Past the cap a new vote is refused; a person who voted before can still change their vote."""
    await with_agent(redis)
    store = FeedbackStore(redis, SPACE, max_votes=2)
    await store.record(vote(Vote.UP, "U1"))
    await store.record(vote(Vote.UP, "U2"))
    assert await store.record(vote(Vote.UP, "U3")) is VoteOutcome.FULL
    assert await store.record(vote(Vote.DOWN, "U2")) is VoteOutcome.CHANGED
    assert await counts_everywhere(store) == [FeedbackCounts(up=1, down=1)] * 3
    assert await redis.hlen(SPACE.answer_votes(THREAD)) == 2


async def test_a_vote_refreshes_the_agent_ttl_on_every_key(redis: Redis) -> None:
    """Votes and counters live as long as the agent does, from the latest vote."""
    await with_agent(redis)
    store = FeedbackStore(redis, SPACE, agent_ttl=500)
    shard = SPACE.shard_of(THREAD)
    names = [
        SPACE.answer_votes(THREAD),
        SPACE.thread_feedback(THREAD),
        SPACE.channel_feedback("T1", "C1", shard),
        SPACE.team_feedback("T1", shard),
    ]
    await store.record(vote(Vote.UP))
    assert all(450 < ttl <= 500 for ttl in [await redis.ttl(name) for name in names])
    for name in names:
        await redis.expire(name, 5)
    await store.record(vote(Vote.UP, "U2"))
    assert all(450 < ttl <= 500 for ttl in [await redis.ttl(name) for name in names])


@pytest.mark.parametrize(
    ("thread_ts", "answer_ts", "user_id"),
    [
        (THREAD.thread_ts, "not-a-ts", "U1"),
        (THREAD.thread_ts, "1700000005", "U1"),
        (THREAD.thread_ts, "1700000005.000100 U9", "U1"),
        ("", ANSWER, "U1"),  # a DM's top level: the caller names the answer's own thread instead
        (THREAD.thread_ts, ANSWER, "U1 U2"),
        (THREAD.thread_ts, ANSWER, ""),
        (THREAD.thread_ts, ANSWER, "U" * 41),
    ],
)
def test_a_vote_must_name_a_slack_message_and_user(thread_ts: str, answer_ts: str, user_id: str) -> None:
    """What does not look like a Slack ts or user id never becomes part of a key or a field."""
    with pytest.raises(ValueError):
        AnswerVote(ThreadRef("T1", "C1", thread_ts), answer_ts, user_id, Vote.UP)


async def test_thumbs_down_answers_are_listed_newest_first_and_bounded(redis: Redis, store: FeedbackStore) -> None:
    """The thread lists its thumbs-down answers newest first with how many people gave one, at most
    MAX_LISTED_DOWN, and says how many more there are; answers with only thumbs up are not listed."""
    await with_agent(redis)
    answers = [f"17000001{n:02d}.000100" for n in range(MAX_LISTED_DOWN + 2)]
    for answer_ts in answers:
        await store.record(vote(Vote.DOWN, "U1", answer_ts))
    await store.record(vote(Vote.DOWN, "U2", answers[-1]))
    await store.record(vote(Vote.UP, "U1", "1700000200.000100"))
    feedback = await store.thread_feedback(THREAD)
    assert feedback.down_voted[0] == DownVotedAnswer(answers[-1], 2)
    assert [answer.answer_ts for answer in feedback.down_voted] == answers[::-1][:MAX_LISTED_DOWN]
    assert feedback.more_down_voted == 2
    assert feedback.counts == FeedbackCounts(up=1, down=len(answers) + 1)


async def test_clicks_at_once_keep_the_counters_equal_to_the_votes(redis: Redis, store: FeedbackStore) -> None:
    """Many people clicking and changing their minds at the same time: the counters always match the votes held."""
    await with_agent(redis)
    chooser = random.Random(17)
    clicks = [
        vote(chooser.choice(list(Vote)), f"U{chooser.randrange(6)}", chooser.choice([ANSWER, LATER_ANSWER]))
        for _ in range(60)  # under the test client's 100 connections
    ]
    await asyncio.gather(*(store.record(click) for click in clicks))
    held = list((await redis.hgetall(SPACE.answer_votes(THREAD))).values())
    expected = FeedbackCounts(up=held.count("+"), down=held.count("-"))
    assert await counts_everywhere(store) == [expected] * 3


@settings(deadline=None)  # the first KeySpace(1024) looks for its 1024 tags
@given(
    ids=st.tuples(*[st.from_regex(r"[A-Z0-9]{1,11}", fullmatch=True)] * 2),
    seconds=st.integers(1_000_000_000, 9_999_999_999),
    shards=st.sampled_from([1, 3, 16, 1024]),
)
def test_every_key_of_a_vote_is_on_the_threads_slot(ids: tuple[str, str], seconds: int, shards: int) -> None:
    """Votes, the thread's, channel's and workspace's counters of its shard, and its state: one cluster slot."""
    space = KeySpace(shards)
    ref = ThreadRef(ids[0], ids[1], f"{seconds}.000100")
    shard = space.shard_of(ref)
    names = [
        space.answer_votes(ref),
        space.thread_feedback(ref),
        space.channel_feedback(ref.team_id, ref.channel_id, shard),
        space.team_feedback(ref.team_id, shard),
        space.state(ref),
    ]
    assert {key_slot(name.encode()) for name in names} == {key_slot(space.queue(shard).encode())}


async def test_on_a_cluster_votes_are_recorded_and_summed(redis_cluster: LocalCluster) -> None:
    """On a three-master Redis Cluster the vote script runs on its thread's node and the readers sum every node."""
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        for ref in (THREAD, ELSEWHERE):
            await with_agent(client, ref)
        store = FeedbackStore(client, SPACE)
        await store.record(vote(Vote.UP, thread=THREAD))
        await store.record(vote(Vote.DOWN, thread=THREAD))
        await store.record(vote(Vote.DOWN, "U2", thread=ELSEWHERE))
        assert await store.channel_feedback("T1", "C1") == FeedbackCounts(up=0, down=2)
        assert await store.team_feedback("T1") == FeedbackCounts(up=0, down=2)
        assert (await store.thread_feedback(ELSEWHERE)).down_voted == [DownVotedAnswer(ANSWER, 1)]
    finally:
        await client.aclose()
