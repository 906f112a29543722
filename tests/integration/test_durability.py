"""Exactly one reply per mention through crashes, restarts, Slack retries and several processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.stored import consumers, task_field, turns

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
ANSWER = "The answer is 42."


def mention(slack: FakeSlack, text: str, *, thread_ts: str | None = None, user: str = "U0ALICE") -> dict[str, Any]:
    """An Events API envelope of a mention of the bot."""
    # Stored in the fake too: real Slack has every message an event announces, and the bot may read it back.
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user=user, thread_ts=thread_ts, mention=True
    )


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    """Texts of the bot's messages in the thread."""
    return [str(m.get("text", "")) for m in slack.bot_replies(CHANNEL, thread_ts)]


async def history(redis: Redis, slack: FakeSlack, thread_ts: str) -> list[dict[str, Any]]:
    """The thread's remembered turns, straight from Redis."""
    return await turns(redis, ThreadRef(slack.team_id, CHANNEL, thread_ts))


async def assert_answered_once(redis: Redis, slack: FakeSlack, thread_ts: str, answer: str = ANSWER) -> None:
    """One bot message in the thread carries the answer, and the history holds the exchange once."""
    await wait_until(lambda: replies(slack, thread_ts) == [answer], timeout=15)
    await wait_until(lambda: history(redis, slack, thread_ts), timeout=5)
    turns = await history(redis, slack, thread_ts)
    assert [turn["role"] for turn in turns] == ["user", "assistant"]
    assert turns[1]["text"] == answer


async def post_until_dead(bot: BotProcess, envelope: dict[str, Any]) -> None:
    """Send an event to a bot armed to die while handling it; the request gets no answer."""
    with pytest.raises(aiohttp.ClientError):
        await bot.post_event(envelope)
    assert await asyncio.wait_for(bot.process.wait(), 10) == -9  # type: ignore[union-attr]


@pytest.mark.both_redis
async def test_killed_after_intake_before_the_ack(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Slack gets no ack and redelivers; the restarted bot acks the retry and answers once."""
    claude.reply_text(ANSWER)
    envelope = mention(slack, "question")
    crashing = make_bot(BOT_CRASH_AT="intake.recorded")
    await crashing.start()
    await post_until_dead(crashing, envelope)
    assert crashing.output().count("crash point intake.recorded") == 1
    restarted = make_bot()
    await restarted.start()
    assert await restarted.post_event(envelope, retry_num=1, retry_reason="http_timeout") == 200
    await assert_answered_once(redis, slack, envelope["event"]["ts"])
    assert len(claude.requests) == 1


@pytest.mark.both_redis
async def test_killed_during_the_model_call(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """The restarted bot asks again and finishes the same placeholder, saying it resumed meanwhile."""
    claude.reply_text("never delivered", gate=asyncio.Event())
    claude.reply_text(ANSWER)
    bot = make_bot()
    await bot.start()
    envelope = mention(slack, "question")
    await bot.post_event(envelope)
    await wait_until(lambda: len(claude.requests) == 1, timeout=10)
    await bot.kill()
    restarted = make_bot()
    await restarted.start()
    thread_ts = envelope["event"]["ts"]
    await assert_answered_once(redis, slack, thread_ts)
    assert any("picking it up again" in str(update.get("text")) for update in slack.updates)


@pytest.mark.parametrize("crash_point", ["answer.journaled", "reply.posted"])
async def test_killed_after_the_answer_exists(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, crash_point: str
) -> None:
    """Killed after the answer is journaled (or already shown): the restart finishes it without a new model call."""
    claude.reply_text(ANSWER)
    bot = make_bot(BOT_CRASH_AT=crash_point)
    await bot.start()
    envelope = mention(slack, "question")
    await bot.post_event(envelope)
    assert await asyncio.wait_for(bot.process.wait(), 15) == -9  # type: ignore[union-attr]
    restarted = make_bot()
    await restarted.start()
    await assert_answered_once(redis, slack, envelope["event"]["ts"])
    assert len(claude.requests) == 1


@pytest.mark.both_redis
async def test_completed_tool_call_is_not_run_again(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Killed right after a tool call was journaled, the resumed task goes on to the next model call."""
    claude.reply_tool_use("read_thread", {"limit": 5}, text_before="Let me look at the thread.")
    claude.reply_text(ANSWER)
    bot = make_bot(BOT_CRASH_AT="tool.done")
    await bot.start()
    envelope = mention(slack, "summarise this thread")
    await bot.post_event(envelope)
    assert await asyncio.wait_for(bot.process.wait(), 15) == -9  # type: ignore[union-attr]
    tool_reads = len(slack.calls_to("conversations.replies"))
    assert tool_reads == 1
    restarted = make_bot()
    await restarted.start()
    await assert_answered_once(redis, slack, envelope["event"]["ts"])
    assert len(slack.calls_to("conversations.replies")) == tool_reads
    assert len(claude.requests) == 2
    final_request = claude.requests[-1]["messages"]
    assert final_request[-1]["content"][0]["type"] == "tool_result"
    assert final_request[-2]["content"][-1]["type"] == "tool_use"


@pytest.mark.both_redis
async def test_same_event_three_times_is_one_task(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> None:
    """Slack's retries of one event_id give one task, one model call and one reply."""
    claude.reply_text(ANSWER)
    envelope = mention(slack, "question")
    statuses = [await bot.post_event(envelope)]
    for attempt in (1, 2):
        statuses.append(await bot.post_event(envelope, retry_num=attempt, retry_reason="http_timeout"))
    assert statuses == [200, 200, 200]
    await wait_until(lambda: replies(slack, envelope["event"]["ts"]) == [ANSWER], timeout=10)
    assert len(claude.requests) == 1


@pytest.mark.both_redis
async def test_sigterm_during_a_long_answer_finishes_after_restart(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """SIGTERM mid-answer: the process exits 0 within the grace period; the answer comes after the next start."""
    claude.reply_text("too slow", gate=asyncio.Event())
    claude.reply_text(ANSWER)
    bot = make_bot(SHUTDOWN_GRACE_SECONDS="2")
    await bot.start()
    envelope = mention(slack, "a hard question")
    await bot.post_event(envelope)
    await wait_until(lambda: len(claude.requests) == 1, timeout=10)
    started = asyncio.get_running_loop().time()
    assert await bot.stop(timeout=10) == 0
    assert asyncio.get_running_loop().time() - started < 2 + 2.5  # grace plus the blocking read and exit
    assert replies(slack, envelope["event"]["ts"]) == [":hourglass_flowing_sand: Thinking…"]
    restarted = make_bot()
    await restarted.start()
    await assert_answered_once(redis, slack, envelope["event"]["ts"])


async def test_a_task_that_keeps_crashing_is_failed_and_the_thread_moves_on(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Past MAX_TASK_ATTEMPTS a task is failed with a message in its thread, and the next mention is answered."""
    claude.reply_text(ANSWER)
    first = make_bot(BOT_CRASH_AT="answer.journaled", MAX_TASK_ATTEMPTS="1")
    await first.start()
    envelope = mention(slack, "poison")
    thread_ts = envelope["event"]["ts"]
    await first.post_event(envelope)
    assert await asyncio.wait_for(first.process.wait(), 15) == -9  # type: ignore[union-attr]
    second = make_bot(MAX_TASK_ATTEMPTS="1")
    await second.start()
    await wait_until(lambda: any("could not finish" in text for text in replies(slack, thread_ts)), timeout=15)
    claude.reply_text("second answer")
    await second.post_event(mention(slack, "next question", thread_ts=thread_ts))
    await wait_until(lambda: replies(slack, thread_ts)[-1:] == ["second answer"], timeout=15)
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    assert await task_field(redis, ref, envelope["event_id"], "status") == "failed"


@pytest.mark.both_redis
async def test_two_processes_share_the_work_in_order_and_survive_one_dying(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """50 mentions in 25 threads over two processes: each answered once, in order; a killed process's work moves."""
    claude.set_default(claude_reply_for)
    bots = [make_bot(DYNO="web.1", TASK_LEASE_SECONDS="2"), make_bot(DYNO="web.2", TASK_LEASE_SECONDS="2")]
    await asyncio.gather(*(bot.start() for bot in bots))
    firsts = [mention(slack, f"thread {n} question 1") for n in range(25)]
    for n, envelope in enumerate(firsts):
        await bots[n % 2].post_event(envelope)
    seconds = [mention(slack, f"thread {n} question 2", thread_ts=e["event"]["ts"]) for n, e in enumerate(firsts)]
    for n, envelope in enumerate(seconds):
        await bots[(n + 1) % 2].post_event(envelope)
    await wait_until(lambda: len(claude.requests) >= 10, timeout=15)
    await bots[0].kill()
    for n, envelope in enumerate(firsts):
        thread_ts = envelope["event"]["ts"]
        expected = [f"answer to thread {n} question 1", f"answer to thread {n} question 2"]
        await wait_until(lambda t=thread_ts, e=expected: replies(slack, t) == e, timeout=30)
    assert "took over" in bots[1].output()


def claude_reply_for(body: dict[str, Any]) -> Reply:
    """Answer 'answer to <question>' after a short think, so work is in flight when a process is killed."""
    [*_, question] = re.findall(r"thread \d+ question \d", " ".join(user_texts(body)))
    return Reply([{"type": "text", "text": f"answer to {question}"}], "end_turn", delay=0.2)


@pytest.mark.both_redis
async def test_two_live_processes_never_share_a_consumer_name(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """A second process started with the same DYNO takes a distinct name, says so, and both do work."""
    first, second = make_bot(DYNO="web.1"), make_bot(DYNO="web.1")
    await first.start()
    await second.start()
    assert "another live process already works as 'web.1'" in second.output()
    names = {client.get("name") for client in await redis.client_list()}
    assert "agent-worker:web.1" in names
    assert any(str(name).startswith("agent-worker:web.1-") for name in names)
    envelopes = [mention(slack, f"question {n}") for n in range(6)]
    for n, envelope in enumerate(envelopes):
        await (first if n % 2 else second).post_event(envelope)
    for envelope in envelopes:
        await wait_until(lambda t=envelope["event"]["ts"]: len(replies(slack, t)) == 1, timeout=15)
    assert len(await consumers(redis)) == 2


@pytest.mark.both_redis
async def test_a_stalled_worker_that_wakes_up_after_losing_its_lease_cannot_write(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """A frozen process loses its thread to another; when it thaws, its late answer is refused and logged."""
    held = asyncio.Event()
    claude.reply_text("stale answer", gate=held)
    claude.reply_text(ANSWER)
    frozen = make_bot(DYNO="web.1", TASK_LEASE_SECONDS="2")
    await frozen.start()
    envelope = mention(slack, "question")
    await frozen.post_event(envelope)
    await wait_until(lambda: len(claude.requests) == 1, timeout=10)
    survivor = make_bot(DYNO="web.2", TASK_LEASE_SECONDS="2")
    await survivor.start()
    assert frozen.process is not None
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        await assert_answered_once(redis, slack, envelope["event"]["ts"])
        assert "took over 1 thread" in survivor.output()
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
    held.set()  # the frozen process's model call now returns, too late
    await wait_until(
        lambda: "no longer holds queue entry" in frozen.output() or "passed to another worker" in frozen.output(),
        timeout=10,
    )
    assert replies(slack, envelope["event"]["ts"]) == [ANSWER]
    assert len(await history(redis, slack, envelope["event"]["ts"])) == 2
