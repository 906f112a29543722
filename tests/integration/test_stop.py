"""Stop across processes: the event reaches web process A, worker process B runs the answer and stops it at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, slash_command_form, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.stop_fakes import WatchedAnthropic, stop_pressed
from tests.integration.stored import SPACE, turns

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
STOPPER = "U0BOB"
# Long and slow: 75 pieces of 8 characters, one every 0.2 s, so 15 s unless stopped.
SLOW_ANSWER = " ".join(f"word{number:03d}" for number in range(75))
STOPPED_MARK = f"_Stopped by <@{STOPPER}>._"


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    """The fake model, watched (replaces the plain one for this module's bots)."""
    async with WatchedAnthropic() as fake:
        yield fake


@pytest.fixture(autouse=True)
def stopper_is_an_admin(slack: FakeSlack) -> None:
    """A stop is for admins and the thread's people (tests/unit/handlers/test_admins.py): the stopper, who writes
    nothing in these threads, is a workspace admin."""
    slack.add_user(STOPPER, "bob", is_admin=True)


@pytest.fixture
async def web_and_worker(make_bot: BotFactory) -> tuple[BotProcess, BotProcess]:
    """Web process A (takes Slack's requests, runs no tasks) and worker process B (runs them)."""
    web_a = make_bot(RUN_WORKERS_IN_WEB="false")
    worker_b = make_bot("worker", DYNO="worker.1")
    await asyncio.gather(web_a.start(), worker_b.start(wait_ready=False))  # both start at once: the suite is faster
    await wait_until(lambda: "worker only" in worker_b.output(), timeout=20)
    return web_a, worker_b


def mention(slack: FakeSlack, text: str, *, thread_ts: str | None = None, user: str = "U0ALICE") -> dict[str, Any]:
    """An Events API envelope of a mention of the bot (the message is stored in the fake too)."""
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user=user, thread_ts=thread_ts, mention=True
    )


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    """Texts of the bot's messages in the thread."""
    return [str(message.get("text", "")) for message in slack.bot_replies(CHANNEL, thread_ts)]


def session_stopped(slack: FakeSlack, thread_ts: str, user: str = STOPPER) -> dict[str, Any]:
    """The envelope Slack sends when `user` presses Stop on the thread's session."""
    return stop_pressed(slack, CHANNEL, thread_ts, user)


async def stop_by(way: str, web_a: BotProcess, slack: FakeSlack, thread_ts: str) -> str | None:
    """Ask for a stop one of the three ways, through web process A; returns the ephemeral answer of `/agent stop`."""
    if way == "button":
        assert await web_a.post_event(session_stopped(slack, thread_ts)) == 200
        return None
    if way == "streamed-button":  # Slack stops the stream itself, then tells the app
        assert await web_a.post_event(slack.press_stop(CHANNEL, thread_ts, STOPPER)) == 200
        return None
    if way == "mention":
        assert await web_a.post_event(mention(slack, "stop", thread_ts=thread_ts, user=STOPPER)) == 200
        return None
    link = f"<https://fake-team.slack.com/archives/{CHANNEL}/p{thread_ts.replace('.', '')}>"
    form = slash_command_form(
        "/agent", f"stop {link}", team_id=slack.team_id, channel_id=CHANNEL, user_id=STOPPER, response_url=""
    )
    status, body = await web_a.post_command(form)
    assert status == 200
    return str(json.loads(body)["text"])


def bot_writes(slack: FakeSlack) -> int:
    """How many messages the bot has posted or changed so far."""
    methods = ("chat.postMessage", "chat.update", "chat.delete", "chat.appendStream", "chat.stopStream")
    return sum(len(slack.calls_to(method)) for method in methods)


@pytest.mark.parametrize(
    ("redis_backend", "way"),
    [("standalone", "button"), ("standalone", "mention"), ("standalone", "command"), ("cluster", "streamed-button")],
    indirect=["redis_backend"],
)
async def test_a_stop_taken_by_the_web_process_stops_the_answer_running_on_the_worker(
    web_and_worker: tuple[BotProcess, BotProcess],
    slack: FakeSlack,
    claude: WatchedAnthropic,
    redis: Redis,
    way: str,
) -> None:
    """Stop pressed (or `@bot stop`, or `/agent stop <link>`) while worker B streams the answer: the model stream
    is closed within a second, the partial answer stays marked as stopped, nothing more is posted, the history keeps
    it as stopped, and the thread's next mention is answered."""
    web_a, worker_b = web_and_worker
    slack.agent_features = way == "streamed-button"  # the answer streams natively, Stop is Slack's own button
    claude.enqueue(Reply([{"type": "text", "text": SLOW_ANSWER}], chunk_delay=0.2))
    root = mention(slack, "tell me a long story")
    thread_ts = str(root["event"]["ts"])
    assert await web_a.post_event(root) == 200
    await wait_until(lambda: any("word00" in text for text in replies(slack, thread_ts)), timeout=20)
    asked = time.monotonic()
    answer = await stop_by(way, web_a, slack, thread_ts)
    await wait_until(lambda: claude.stream_ends, timeout=5)
    [(ended, closed)] = claude.stream_ends
    assert closed, "the stream was read to its end, not closed"
    assert ended - asked < 1.0, f"the model stream closed {ended - asked:.2f} s after the stop was asked"

    def stopped_answer() -> str | None:
        return next((text for text in replies(slack, thread_ts) if text.endswith(STOPPED_MARK)), None)

    await wait_until(stopped_answer, timeout=5)
    partial = str(stopped_answer()).removesuffix(STOPPED_MARK).rstrip()
    assert partial and SLOW_ANSWER.startswith(partial) and partial != SLOW_ANSWER
    if way == "mention":
        assert "Stopping…" in replies(slack, thread_ts)
    if way == "command":
        assert answer is not None and answer.startswith("Stopping the answer in")
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await wait_until(lambda: redis.hget(SPACE.state(ref), "tasks_stopped"), timeout=5)
    writes = bot_writes(slack)
    await wait_until(lambda: time.monotonic() - asked > 2.5, timeout=5)  # what a running answer would have written
    assert bot_writes(slack) == writes, "the bot wrote to Slack after the answer was stopped"
    assert len(claude.requests) == 1
    remembered = await turns(redis, ref)
    assert [turn["role"] for turn in remembered] == ["user", "assistant"]
    assert remembered[1]["text"].endswith(STOPPED_MARK)
    state = await redis.hgetall(SPACE.state(ref))
    assert (state["tasks_stopped"], state.get("tasks_failed", "0")) == ("1", "0")

    if way == "streamed-button":
        assert slack.session(CHANNEL, thread_ts).status == "active"
    claude.reply_text("the next answer")
    assert await web_a.post_event(mention(slack, "and now?", thread_ts=thread_ts)) == 200
    await wait_until(lambda: "the next answer" in replies(slack, thread_ts), timeout=15)
    assert "stopping task" in worker_b.output()


async def test_a_mention_queued_behind_a_stopped_answer_still_runs(
    web_and_worker: tuple[BotProcess, BotProcess], slack: FakeSlack, claude: WatchedAnthropic
) -> None:
    """A mention that waited in the thread's inbox behind the stopped answer is answered after it."""
    web_a, _ = web_and_worker
    claude.enqueue(Reply([{"type": "text", "text": SLOW_ANSWER}], chunk_delay=0.2))
    claude.reply_text("the queued one's answer")
    root = mention(slack, "tell me a long story")
    thread_ts = str(root["event"]["ts"])
    assert await web_a.post_event(root) == 200
    await wait_until(lambda: any("word00" in text for text in replies(slack, thread_ts)), timeout=20)
    assert await web_a.post_event(mention(slack, "and then?", thread_ts=thread_ts)) == 200
    await stop_by("button", web_a, slack, thread_ts)
    await wait_until(lambda: "the queued one's answer" in replies(slack, thread_ts), timeout=15)
    assert any(text.endswith(STOPPED_MARK) for text in replies(slack, thread_ts))


async def test_a_stop_with_nothing_running_says_so_and_changes_nothing(
    web_and_worker: tuple[BotProcess, BotProcess], slack: FakeSlack, claude: WatchedAnthropic, redis: Redis
) -> None:
    """In a thread whose answer is finished, `@bot stop` says nothing runs, `/agent stop` too, and Stop is ignored."""
    web_a, _ = web_and_worker
    claude.reply_text("done already")
    root = mention(slack, "a short one")
    thread_ts = str(root["event"]["ts"])
    assert await web_a.post_event(root) == 200
    await wait_until(lambda: replies(slack, thread_ts) == ["done already"], timeout=20)
    await stop_by("mention", web_a, slack, thread_ts)
    await wait_until(lambda: "Nothing is running here." in replies(slack, thread_ts), timeout=5)
    answer = await stop_by("command", web_a, slack, thread_ts)
    assert answer is not None and answer.startswith("Nothing is running in")
    await stop_by("button", web_a, slack, thread_ts)
    await wait_until(lambda: "with nothing running" in web_a.output(), timeout=5)
    assert replies(slack, thread_ts) == ["done already", "Nothing is running here."]
    state = await redis.hgetall(SPACE.state(ThreadRef(slack.team_id, CHANNEL, thread_ts)))
    assert state.get("tasks_stopped", "0") == "0" and state["tasks_done"] == "1"


async def test_a_stop_whose_notice_is_lost_stops_the_answer_at_its_next_step(
    web_and_worker: tuple[BotProcess, BotProcess], slack: FakeSlack, claude: WatchedAnthropic, redis: Redis
) -> None:
    """The task marked stopped with no notice to its worker: the model call under way is not journaled, its tool
    call is not run, no further model call is made, and the answer ends marked as stopped."""
    web_a, _ = web_and_worker
    claude.enqueue(
        Reply(
            [
                {"type": "text", "text": "Let me read the thread first, it is long."},
                {"type": "tool_use", "id": "toolu_01", "name": "read_thread", "input": {}},
            ],
            "tool_use",
            chunk_delay=0.2,
        )
    )
    root = mention(slack, "summarize this")
    thread_ts = str(root["event"]["ts"])
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    assert await web_a.post_event(root) == 200
    await wait_until(lambda: len(claude.requests) == 1, timeout=20)
    thread_reads = len(slack.calls_to("conversations.replies"))
    # What the STOP script does, without the notice: only the mark on the task.
    await redis.hset(SPACE.task(ref, str(root["event_id"])), mapping={"stop_by": STOPPER, "stop_at": str(time.time())})
    await wait_until(lambda: any(text.endswith(STOPPED_MARK) for text in replies(slack, thread_ts)), timeout=15)
    assert len(claude.requests) == 1
    assert len(slack.calls_to("conversations.replies")) == thread_reads, "the tool call ran"
    # The mark is shown before FINISH records the stop: wait for the record, not only for the message.
    await wait_until(lambda: redis.hget(SPACE.state(ref), "tasks_stopped"), timeout=5)
    assert (await redis.hget(SPACE.state(ref), "tasks_stopped")) == "1"


async def test_a_stop_of_an_answer_whose_worker_died_ends_it_when_it_resumes(
    make_bot: BotFactory, slack: FakeSlack, claude: WatchedAnthropic, redis: Redis
) -> None:
    """Worker B killed mid-answer, Stop pressed meanwhile: the restarted worker does not run the answer again; it
    ends it as stopped (its message marked, its question kept), ending the stream B left open and setting the
    session back to active."""
    slack.agent_features = True
    web_a = make_bot(RUN_WORKERS_IN_WEB="false")
    await web_a.start()
    worker_b = make_bot("worker", DYNO="worker.1")
    await worker_b.start(wait_ready=False)
    claude.enqueue(Reply([{"type": "text", "text": SLOW_ANSWER}], chunk_delay=0.2))
    root = mention(slack, "tell me a long story")
    thread_ts = str(root["event"]["ts"])
    assert await web_a.post_event(root) == 200
    await wait_until(lambda: any("word00" in text for text in replies(slack, thread_ts)), timeout=20)
    await worker_b.kill()
    assert await web_a.post_event(session_stopped(slack, thread_ts)) == 200
    restarted = make_bot("worker", DYNO="worker.1")
    await restarted.start(wait_ready=False)
    await wait_until(lambda: replies(slack, thread_ts) == [STOPPED_MARK], timeout=20)
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    # The message is marked before FINISH writes the turns (with tasks_stopped, in one script): wait for that write.
    await wait_until(lambda: redis.hget(SPACE.state(ref), "tasks_stopped"), timeout=5)
    assert len(claude.requests) == 1
    remembered = await turns(redis, ref)
    assert [(turn["role"], turn["text"]) for turn in remembered] == [
        ("user", "tell me a long story"),
        ("assistant", STOPPED_MARK),
    ]
    [reply] = slack.bot_replies(CHANNEL, thread_ts)
    assert not slack.is_streaming(CHANNEL, reply["ts"])
    assert slack.session(CHANNEL, thread_ts).status == "active"
