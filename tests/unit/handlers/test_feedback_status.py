"""Feedback in `/agent status`: the channel's and the workspace's counts in the overview, the thread's counts and its
thumbs-down answers in the detail, as Block Kit Slack accepts."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from slack_sdk.models.blocks import Block

from bot.runtime.app import Bot
from handlers.links import parse_thread_link
from handlers.views import describe_feedback, thread_detail
from store.feedback import (
    MAX_LISTED_DOWN,
    AnswerVote,
    DownVotedAnswer,
    FeedbackCounts,
    FeedbackStore,
    ThreadFeedback,
    Vote,
)
from store.models import AgentState, ThreadRef, Usage
from tests.fakes import FakeSlack
from tests.unit.handlers.test_command_listeners import CHANNEL, OTHER_CHANNEL, THREAD_TS, link, run_command, shown
from tests.unit.store.conftest import SPACE
from tests.unit.store.test_feedback import with_agent


async def vote(store: FeedbackStore, ref: ThreadRef, answer_ts: str, user: str, choice: Vote) -> None:
    """Record one person's vote on one answer of the thread."""
    await store.record(AnswerVote(ref, answer_ts, user, choice))


async def test_the_overview_shows_the_channels_and_the_workspaces_feedback(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """The channel line counts the channel's votes; the workspace's add its other channels, never another workspace."""
    assert "this channel no votes yet · the workspace no votes yet" in shown(await run_command(bot, slack, "status"))
    store = FeedbackStore(redis, SPACE)
    here = await with_agent(redis, ThreadRef(slack.team_id, CHANNEL, THREAD_TS))
    there = await with_agent(redis, ThreadRef(slack.team_id, OTHER_CHANNEL, THREAD_TS))
    elsewhere = await with_agent(redis, ThreadRef("T0ELSEWHERE", CHANNEL, THREAD_TS))
    for user, choice in (("U1", Vote.UP), ("U2", Vote.UP), ("U3", Vote.UP), ("U4", Vote.DOWN)):
        await vote(store, here, "1700000001.000100", user, choice)
    await vote(store, there, "1700000001.000100", "U1", Vote.DOWN)
    await vote(store, elsewhere, "1700000001.000100", "U1", Vote.DOWN)
    text = shown(await run_command(bot, slack, "status"))
    assert "this channel :+1: 3 · :-1: 1 (75% positive) · the workspace :+1: 3 · :-1: 2 (60% positive)" in text


async def test_the_thread_detail_lists_its_thumbs_down_answers_newest_first(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """The detail shows the thread's counts and rate, and links each thumbs-down answer in its thread, newest first;
    the links lead back to the thread."""
    store = FeedbackStore(redis, SPACE)
    ref = await with_agent(redis, ThreadRef(slack.team_id, CHANNEL, THREAD_TS))
    await vote(store, ref, "1700000001.000100", "U1", Vote.DOWN)
    await vote(store, ref, "1700000002.000100", "U1", Vote.UP)
    await vote(store, ref, "1700000003.000100", "U1", Vote.DOWN)
    await vote(store, ref, "1700000003.000100", "U2", Vote.DOWN)
    body = await run_command(bot, slack, f"status {link()}")
    text = shown(body)
    assert "*Feedback*\\n:+1: 1 · :-1: 3 (25% positive)" in text
    [listing] = [block["text"]["text"] for block in body["blocks"] if "Answers given a :-1:" in str(block)]
    newest = f"https://fake-team.slack.com/archives/{CHANNEL}/p1700000003000100?thread_ts={THREAD_TS}&amp;cid={CHANNEL}"
    assert listing.splitlines()[1:] == [
        f"• <{newest}|Answer of 2023-11-14 22:13:23 UTC> · 2 :-1:",
        f"• <{newest.replace('p1700000003', 'p1700000001')}|Answer of 2023-11-14 22:13:21 UTC> · 1 :-1:",
    ]
    back = parse_thread_link(newest)  # a person can paste it into `/agent status`
    assert back is not None and back.thread_ts == THREAD_TS and back.is_reply


async def test_a_thread_without_votes_says_so(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """No votes: the detail says so and lists nothing."""
    await with_agent(redis, ThreadRef(slack.team_id, CHANNEL, THREAD_TS))
    text = shown(await run_command(bot, slack, f"status {link()}"))
    assert "*Feedback*\\nno votes yet" in text and "Answers given" not in text


def test_the_detail_stays_within_slacks_limits_with_the_longest_listing() -> None:
    """Ten thumbs-down answers on the longest workspace domain, and more beyond: every block is one slack_sdk reads
    back unchanged (its limits checked), and the listing is whole, well within a section's 3,000 characters."""
    ref = ThreadRef("T1", "C" + "0" * 20, "1700000000.000100")
    state = AgentState(time.time(), time.time(), "idle", 2, 1, 0, Usage())
    answers = [DownVotedAnswer(f"17000001{n:02d}.000100", 1000) for n in range(MAX_LISTED_DOWN)]
    feedback = ThreadFeedback(FeedbackCounts(up=10**6, down=10**6), answers, more_down_voted=990)
    blocks = thread_detail(ref, "d" * 21, state, None, feedback)
    for block in blocks:
        assert Block.parse(block).to_dict() == block  # type: ignore[union-attr]
    listing = blocks[-1]["text"]["text"]
    assert len(listing) < 2500 and listing.count("• <https://") == MAX_LISTED_DOWN
    assert listing.endswith("…and 990 earlier one(s)")


def test_the_rate_is_the_share_of_thumbs_up_rounded_down() -> None:
    """One thumbs down among two hundred votes is 99%, never 100%."""
    assert describe_feedback(FeedbackCounts(up=199, down=1)) == ":+1: 199 · :-1: 1 (99% positive)"
    assert describe_feedback(FeedbackCounts(up=0, down=2)) == ":+1: 0 · :-1: 2 (0% positive)"
    assert describe_feedback(FeedbackCounts()) == "no votes yet"
