"""Reading long threads through the Web API gateway against the Slack emulator: only the pages needed."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from handlers.gateway import WebApiGateway
from handlers.thread_pages import MAX_CALLS
from playground.payloads import format_ts, ts_to_micros
from store.models import ThreadRef
from tests.fakes import FakeSlack

CHANNEL = "C0LONG"
REPLIES = 10_000
DAY = 24 * 3600 * 1_000_000
START = ts_to_micros("1700000000.000000")

# Where the n-th of REPLIES replies falls, in microseconds after the parent: threads as they are in life.
SPREADS: dict[str, Callable[[int], int]] = {
    "a burst": lambda n: 1 + n * 7,  # a bot's log lines, microseconds apart
    "steady over a week": lambda n: 1 + n * (7 * DAY // REPLIES),
    "busy first hour, then a quiet week": lambda n: (
        1 + n * 400_000 if n < 9_000 else 9_000 * 400_000 + (n - 8_999) * (7 * DAY // 1_000)
    ),
    "quiet week, then a busy hour": lambda n: (
        1 + n * (7 * DAY // 1_000) if n < 1_000 else 1_000 * (7 * DAY // 1_000) + (n - 999) * 400_000
    ),
}


def long_thread(slack: FakeSlack, spread: Callable[[int], int]) -> tuple[ThreadRef, list[str]]:
    """A parent and REPLIES replies at the given times; returns the thread and every ts, oldest first."""
    parent = slack.add_message(CHANNEL, "the parent", ts=format_ts(START))
    stamps = [parent]
    for n in range(REPLIES):
        stamps.append(slack.add_message(CHANNEL, f"reply {n}", ts=format_ts(START + spread(n)), thread_ts=parent))
    return ThreadRef(slack.team_id, CHANNEL, parent), stamps


def replies_calls(slack: FakeSlack) -> int:
    return len(slack.calls_to("conversations.replies"))


@pytest.mark.parametrize("spread", SPREADS.values(), ids=SPREADS.keys())
async def test_the_newest_messages_of_a_long_thread_cost_a_few_calls(
    slack: FakeSlack, gateway: WebApiGateway, spread: Callable[[int], int]
) -> None:
    """The newest 50 of 10,000 replies, and the 50 before a ts in the middle, are read exactly in 5 calls or fewer."""
    thread, stamps = long_thread(slack, spread)
    tail = await gateway.recent_messages(thread, limit=50)
    assert [m.ts for m in tail.messages] == stamps[-50:] and tail.older_than == stamps[-50]
    assert replies_calls(slack) <= 5
    before = stamps[5_000]
    page = await gateway.recent_messages(thread, limit=50, before_ts=before)
    assert [m.ts for m in page.messages] == stamps[4_950:5_000] and page.older_than == stamps[4_950]
    assert replies_calls(slack) <= 10


@pytest.mark.parametrize("seed", [1, 2])
async def test_paging_back_through_bursts_and_silences_reads_every_message_once(
    slack: FakeSlack, gateway: WebApiGateway, seed: int
) -> None:
    """However unevenly a thread is spread, each read makes at most MAX_CALLS calls and paging back from where it
    stopped yields the whole thread, in order, without a gap."""
    rng = random.Random(seed)
    parent = slack.add_message(CHANNEL, "the parent", ts=format_ts(START))
    stamps, at = [parent], START
    while len(stamps) < 2_000:  # bursts of 1 to 500 replies, microseconds to a minute apart, then a silence
        step = rng.choice([7, 1_000, 1_000_000, 60_000_000])
        for _ in range(rng.choice([1, 5, 50, 500])):
            at += rng.randint(1, step)
            stamps.append(slack.add_message(CHANNEL, "r", ts=format_ts(at), thread_ts=parent))
        at += rng.choice([0, 1_000_000, 3600 * 1_000_000, 7 * DAY])
    thread = ThreadRef(slack.team_id, CHANNEL, parent)
    read: list[str] = []
    before: str | None = None
    for _ in range(200):
        calls = replies_calls(slack)
        tail = await gateway.recent_messages(thread, limit=100, before_ts=before)
        assert replies_calls(slack) - calls <= MAX_CALLS
        read = [m.ts for m in tail.messages] + read
        if tail.older_than is None:
            break
        before = tail.older_than
    assert read == stamps


async def test_a_short_thread_is_read_whole_in_one_call(slack: FakeSlack, gateway: WebApiGateway) -> None:
    """A thread of one page comes whole, parent first, with one call, and says nothing older exists."""
    parent = slack.add_message(CHANNEL, "the parent")
    stamps = [parent, *(slack.add_message(CHANNEL, f"r{n}", thread_ts=parent) for n in range(30))]
    tail = await gateway.recent_messages(ThreadRef(slack.team_id, CHANNEL, parent), limit=100)
    assert [m.ts for m in tail.messages] == stamps and tail.older_than is None
    assert replies_calls(slack) == 1
    assert slack.calls_to("conversations.replies")[0]["limit"] == "200"


async def test_the_start_of_a_long_thread_is_reached_by_paging_back(slack: FakeSlack, gateway: WebApiGateway) -> None:
    """Paging back from the 120th reply reaches the parent and says nothing older exists."""
    thread, stamps = long_thread(slack, SPREADS["steady over a week"])
    tail = await gateway.recent_messages(thread, limit=150, before_ts=stamps[121])
    assert [m.ts for m in tail.messages] == stamps[:121] and tail.older_than is None


async def test_whether_a_linked_message_is_a_thread_costs_one_call(slack: FakeSlack, gateway: WebApiGateway) -> None:
    """A 10,000-reply thread, one of its replies and a lone message are told apart with one call each."""
    thread, stamps = long_thread(slack, SPREADS["a burst"])
    lone = slack.add_message(CHANNEL, "no replies")
    assert await gateway.is_thread(thread)
    assert await gateway.is_thread(ThreadRef(slack.team_id, CHANNEL, stamps[77]))
    assert not await gateway.is_thread(ThreadRef(slack.team_id, CHANNEL, lone))
    assert replies_calls(slack) == 3


async def test_a_task_message_is_found_after_its_mention_without_reading_the_thread(
    slack: FakeSlack, gateway: WebApiGateway
) -> None:
    """The search for a task's message starts at its mention (`oldest`), not at the thread's first page."""
    thread, stamps = long_thread(slack, SPREADS["a burst"])
    ts = await gateway.post_placeholder(thread, "Thinking…", "task-1")
    assert await gateway.find_task_message(thread, "task-1", after_ts=stamps[-1]) == ts
    assert await gateway.find_task_message(thread, "task-2", after_ts=stamps[-1]) is None
    assert [call["oldest"] for call in slack.calls_to("conversations.replies")] == [stamps[-1], stamps[-1]]
