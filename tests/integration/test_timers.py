"""Durable timers through the running process, on a test clock: each fires once, at its time, whatever happens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.core.clock import advance
from store.keys import KeySpace
from store.models import ThreadRef
from store.schedules import ScheduleSpec, ScheduleStore
from tests.fakes import FakeAnthropic, FakeSlack, Reply, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.stop_fakes import stop_pressed
from tests.integration.test_commands import answer_at, answered_thread, click, command

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
MINUTE = 60.0
NOTE = "check whether the deploy is green"


def start_thread(slack: FakeSlack, text: str = "we deploy at noon") -> ThreadRef:
    """A thread in the fake Slack that a schedule will post in."""
    ts = slack.add_message(CHANNEL, text, user="U0ALICE")
    return ThreadRef(slack.team_id, CHANNEL, ts)


def replies(slack: FakeSlack, thread: ThreadRef) -> list[str]:
    """Texts of the bot's messages in the thread."""
    return [str(m.get("text", "")) for m in slack.bot_replies(CHANNEL, thread.thread_ts)]


def schedules(redis: Redis) -> ScheduleStore:
    """The store the bot uses (default shards and limits), for the test to set and read schedules directly."""
    return ScheduleStore(redis, KeySpace())


def timer_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """A bot on the test clock, looking for due timers every 0.1 s."""
    return {"BOT_TEST_CLOCK_FILE": str(tmp_path / "clock"), "TIMER_POLL_SECONDS": "0.1", **more}


def answer_each_note(body: dict[str, Any]) -> Reply:
    """Answer a scheduled run with which note it was given."""
    [question] = [text for text in user_texts(body) if "Your note to yourself" in text][-1:] or ["?"]
    return Reply([{"type": "text", "text": f"ran: {question.rsplit(')', 1)[-1].strip()}"}], "end_turn")


@pytest.mark.both_redis
async def test_a_follow_up_in_30_minutes_fires_once_at_its_time_and_posts_in_the_thread(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """Nothing before its time; once the clock is 30 minutes on, one answer to its note, in the thread, once."""
    claude.set_default(answer_each_note)
    thread = start_thread(slack)
    await schedules(redis).create(ScheduleSpec(thread, time.time() + 30 * MINUTE, NOTE, "U0ALICE"), time.time())
    bot = make_bot(**timer_env(tmp_path))
    await bot.start()
    await wait_until(lambda: "running" in bot.output(), timeout=10)
    await asyncio.sleep(0.5)  # five polls of the loop: it must not fire early
    assert replies(slack, thread) == []
    advance(tmp_path / "clock", 29 * MINUTE)
    await asyncio.sleep(0.5)
    assert replies(slack, thread) == []
    advance(tmp_path / "clock", MINUTE)
    await wait_until(lambda: replies(slack, thread) == [f"ran: {NOTE}"], timeout=15)
    advance(tmp_path / "clock", 60 * MINUTE)
    await asyncio.sleep(0.5)
    assert replies(slack, thread) == [f"ran: {NOTE}"] and len(claude.requests) == 1
    assert await schedules(redis).list_thread(thread) == []


@pytest.mark.parametrize("crash_at", ["timer.firing", "timer.fired"])
async def test_killed_at_the_moment_of_firing_gives_exactly_one_run(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path, crash_at: str
) -> None:
    """kill -9 just before or just after the script that fires: the restarted process runs the timer once."""
    claude.set_default(answer_each_note)
    thread = start_thread(slack)
    await schedules(redis).create(ScheduleSpec(thread, time.time() + 5 * MINUTE, NOTE, "U0ALICE"), time.time())
    crashing = make_bot(**timer_env(tmp_path), BOT_CRASH_AT=crash_at)
    await crashing.start()
    advance(tmp_path / "clock", 5 * MINUTE)
    assert await asyncio.wait_for(crashing.process.wait(), 15) == -9  # type: ignore[union-attr]
    assert f"crash point {crash_at}" in crashing.output()
    restarted = make_bot(**timer_env(tmp_path))
    await restarted.start()
    await wait_until(lambda: replies(slack, thread) == [f"ran: {NOTE}"], timeout=30)
    await asyncio.sleep(1.0)
    assert replies(slack, thread) == [f"ran: {NOTE}"] and len(claude.requests) == 1


async def test_timers_due_during_downtime_fire_once_after_start(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """A once timer and an every-10-minutes one that came due 35 minutes ago while nothing ran: each fires once on
    start, and the recurring one next runs at the first period after now (keeping its phase), not once per miss."""
    claude.set_default(answer_each_note)
    once, recurring = start_thread(slack, "once"), start_thread(slack, "recurring")
    now = time.time()
    store = schedules(redis)
    await store.create(ScheduleSpec(once, now - 35 * MINUTE, "the once note", "U0ALICE"), now - 40 * MINUTE)
    await store.create(
        ScheduleSpec(recurring, now - 35 * MINUTE, "the recurring note", "U0ALICE", every=10 * MINUTE),
        now - 40 * MINUTE,
    )
    bot = make_bot(**timer_env(tmp_path))
    await bot.start()
    await wait_until(lambda: replies(slack, once) == ["ran: the once note"], timeout=15)
    await wait_until(lambda: replies(slack, recurring) == ["ran: the recurring note"], timeout=15)
    [left] = await store.list_thread(recurring)
    assert left.next_at == pytest.approx(now + 5 * MINUTE, abs=0.01) and left.fired == 1
    await asyncio.sleep(0.5)
    assert len(claude.requests) == 2
    advance(tmp_path / "clock", 5 * MINUTE)
    await wait_until(lambda: len(replies(slack, recurring)) == 2, timeout=15)


@pytest.mark.both_redis
async def test_two_worker_processes_never_both_fire_one_timer(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """Two processes polling the same shards every 50 ms: 30 timers due at once in 30 threads run once each."""
    claude.set_default(answer_each_note)
    threads = [start_thread(slack, f"thread {n}") for n in range(30)]
    store = schedules(redis)
    for n, thread in enumerate(threads):
        await store.create(ScheduleSpec(thread, time.time() + MINUTE, f"note {n}", "U0ALICE"), time.time())
    bots = [make_bot(**timer_env(tmp_path, DYNO=f"web.{n}", TIMER_POLL_SECONDS="0.05")) for n in (1, 2)]
    await asyncio.gather(*(bot.start() for bot in bots))
    advance(tmp_path / "clock", MINUTE)
    for n, thread in enumerate(threads):
        await wait_until(lambda t=thread, n=n: replies(slack, t) == [f"ran: note {n}"], timeout=30)
    await asyncio.sleep(0.5)
    assert len(claude.requests) == 30
    assert all(len(replies(slack, thread)) == 1 for thread in threads)


async def test_reset_and_stop_cancel_the_threads_schedules(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """`@bot reset` in one thread and `@bot stop` in another cancel their schedules: nothing fires later; a third
    thread's schedule still does."""
    claude.set_default(answer_each_note)
    reset, stopped, kept = start_thread(slack, "a"), start_thread(slack, "b"), start_thread(slack, "c")
    store = schedules(redis)
    for thread in (reset, stopped, kept):
        at = time.time() + 10 * MINUTE
        await store.create(ScheduleSpec(thread, at, f"note {thread.thread_ts}", "U0ALICE"), time.time())
        await store.create(ScheduleSpec(thread, at, "again", "U0ALICE", every=10 * MINUTE), time.time())
    bot = make_bot(**timer_env(tmp_path))
    await bot.start()
    for thread, word in ((reset, "reset"), (stopped, "stop")):
        envelope = slack.post_user_message(
            CHANNEL, f"<@{slack.bot_user_id}> {word}", user="U0ALICE", thread_ts=thread.thread_ts, mention=True
        )
        assert await bot.post_event(envelope) == 200
    assert await store.list_thread(reset) == [] and await store.list_thread(stopped) == []
    assert len(await store.list_thread(kept)) == 2
    advance(tmp_path / "clock", 10 * MINUTE)
    await wait_until(lambda: len(replies(slack, kept)) == 2, timeout=15)
    await asyncio.sleep(0.5)
    assert not any("ran:" in text for text in replies(slack, reset) + replies(slack, stopped))


async def test_a_recurring_schedule_that_keeps_failing_pauses_itself_and_says_so(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """Every 10 minutes, its runs failing (Claude refuses the request): after two failures in a row (the setting) it
    is paused, the thread is told once, and it fires no more."""
    for _ in range(2):
        claude.reply_error(400, "invalid_request_error", "this request cannot be served")
    thread = start_thread(slack)
    store = schedules(redis)
    made = await store.create(
        ScheduleSpec(thread, time.time() + MINUTE, NOTE, "U0ALICE", every=10 * MINUTE), time.time()
    )
    bot = make_bot(**timer_env(tmp_path, SCHEDULE_MAX_FAILURES="2"))
    await bot.start()
    advance(tmp_path / "clock", MINUTE)

    async def failed_once() -> bool:
        found = await store.get(thread, made.schedule_id)
        return found is not None and found.failures == 1

    # The first run has ended (failed) before the next period: a run still going would have that period left out.
    await wait_until(failed_once, timeout=15)
    advance(tmp_path / "clock", 10 * MINUTE)
    await wait_until(lambda: any("paused a recurring follow-up" in text for text in replies(slack, thread)), timeout=15)
    [paused] = await store.list_thread(thread)
    assert paused.paused and paused.failures == 2
    advance(tmp_path / "clock", 30 * MINUTE)
    await asyncio.sleep(0.5)
    assert len(claude.requests) == 2
    assert sum("paused a recurring follow-up" in text for text in replies(slack, thread)) == 1


async def test_a_channel_reset_cancels_the_channels_schedules(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """`/agent reset` of a whole channel, confirmed by an admin: its threads' schedules are cancelled with their
    agents; another channel's stay."""
    slack.add_user("U0ALICE", "alice", is_admin=True)
    bot = make_bot(**timer_env(tmp_path))
    await bot.start()
    thread_ts = await answered_thread(bot, slack, claude)
    here, elsewhere = ThreadRef(slack.team_id, CHANNEL, thread_ts), ThreadRef(slack.team_id, "C0RANDOM", "1.000001")
    store = schedules(redis)
    for thread in (here, elsewhere):
        await store.create(ScheduleSpec(thread, time.time() + 10 * MINUTE, NOTE, "U0ALICE"), time.time())
    await command(bot, slack, "reset")
    confirmed = await answer_at(slack, await click(bot, slack, "agent_reset_channel_confirm"))
    assert confirmed["text"].startswith("Resetting 1 agent(s)")
    await wait_until(lambda: _none(store, here), timeout=10)
    assert len(await store.list_thread(elsewhere)) == 1


async def _none(store: ScheduleStore, thread: ThreadRef) -> bool:
    """Whether the thread has no schedules left."""
    return not await store.list_thread(thread)


async def test_stop_stops_a_running_scheduled_run_and_cancels_the_schedule(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """Stop pressed while a recurring check's run streams: the run ends as stopped, like an answer, and the schedule
    is cancelled, so nothing runs at its next period."""
    claude.enqueue(Reply([{"type": "text", "text": " ".join(f"word{n:03d}" for n in range(75))}], chunk_delay=0.2))
    thread = start_thread(slack)
    store = schedules(redis)
    await store.create(ScheduleSpec(thread, time.time() + MINUTE, NOTE, "U0ALICE", every=10 * MINUTE), time.time())
    bot = make_bot(**timer_env(tmp_path))
    await bot.start()
    advance(tmp_path / "clock", MINUTE)
    await wait_until(lambda: any("word00" in text for text in replies(slack, thread)), timeout=20)
    assert await bot.post_event(stop_pressed(slack, CHANNEL, thread.thread_ts, "U0ALICE")) == 200
    await wait_until(lambda: any(t.endswith("_Stopped by <@U0ALICE>._") for t in replies(slack, thread)), timeout=15)
    assert await store.list_thread(thread) == []
    advance(tmp_path / "clock", 10 * MINUTE)
    await asyncio.sleep(0.5)
    assert len(claude.requests) == 1


async def test_a_scheduled_run_counts_against_its_creators_budget(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """Alice's answer used up her one-cent daily budget: her follow-up, when it comes due, is refused like her next
    mention would be (the thread is told which budget), and Claude is not called; Bob's follow-up still runs."""
    bot = make_bot(**timer_env(tmp_path, DAILY_BUDGET_USD_PER_USER="0.01", MAX_OUTPUT_TOKENS="64"))
    await bot.start()
    claude.reply_text("first answer", usage={"output_tokens": 1000})  # 1.5 cents at Sonnet's price
    root = slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> hello", user="U0ALICE", mention=True)
    await bot.post_event(root)
    alices = ThreadRef(slack.team_id, CHANNEL, str(root["event"]["ts"]))
    await wait_until(lambda: replies(slack, alices) == ["first answer"], timeout=10)
    bobs = start_thread(slack, "bob's thread")
    store = schedules(redis)
    await store.create(ScheduleSpec(alices, time.time() + MINUTE, NOTE, "U0ALICE"), time.time())
    await store.create(ScheduleSpec(bobs, time.time() + MINUTE, "bob's note", "U0BOB"), time.time())
    claude.set_default(answer_each_note)
    advance(tmp_path / "clock", MINUTE)
    await wait_until(lambda: replies(slack, bobs) == ["ran: bob's note"], timeout=15)
    await wait_until(lambda: len(replies(slack, alices)) == 2, timeout=15)
    assert "your daily budget of $0.0100 a person" in replies(slack, alices)[1]
    assert len(claude.requests) == 2  # Alice's first answer and Bob's follow-up
