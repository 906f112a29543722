"""The agent's schedule tool through the running process, on a test clock: the (scripted) model schedules its own
follow-ups from a mention, and they run in the thread at their time, until their end."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot.core.clock import advance
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.test_commands import mention
from tests.integration.test_timers import CHANNEL, MINUTE, replies, schedules, timer_env

pytestmark = pytest.mark.integration
Body = dict[str, Any]


def last_message(body: Body) -> Body:
    """The request's last message (the question, or the tool results)."""
    return dict(body["messages"][-1])


def tool_result(body: Body) -> tuple[str, bool] | None:
    """The text and error flag of the tool result the request ends with, or None if it ends with a question."""
    content = last_message(body)["content"]
    for block in content if isinstance(content, list) else []:
        if block.get("type") == "tool_result":
            inner = block.get("content")
            text = inner if isinstance(inner, str) else " ".join(part.get("text", "") for part in inner or [])
            return text, bool(block.get("is_error"))
    return None


def question(body: Body) -> str:
    """The text of the request's last user message."""
    content = last_message(body)["content"]
    if isinstance(content, str):
        return content
    return " ".join(str(block.get("text", "")) for block in content if block.get("type") == "text")


def call(name: str, **given: Any) -> Reply:
    """A model turn that calls a tool."""
    return Reply([{"type": "tool_use", "id": f"toolu_{time.monotonic_ns()}", "name": name, "input": given}], "tool_use")


def say(text: str) -> Reply:
    """A model turn that answers."""
    return Reply([{"type": "text", "text": text}], "end_turn")


def relay(body: Body) -> Reply:
    """After a tool call: tell the thread what the tool said (an error as people would read it)."""
    result = tool_result(body)
    assert result is not None
    text, is_error = result
    return say(("I could not: " if is_error else "Done: ") + text)


def answered(slack: FakeSlack, thread: ThreadRef, count: int = 1) -> bool:
    """Whether the thread has `count` answers, each past its placeholder (the tool's result relayed, or a run's)."""
    texts = replies(slack, thread)
    busy = any(text.startswith(":hourglass") or text.endswith("✍️") for text in texts)  # a placeholder, a preview
    return len(texts) == count and not busy


async def mentioned(bot: BotProcess, slack: FakeSlack, text: str) -> ThreadRef:
    """Mention the bot in the channel; the thread its answer goes in."""
    root = mention(slack, text)
    assert await bot.post_event(root) == 200
    return ThreadRef(slack.team_id, CHANNEL, str(root["event"]["ts"]))


async def started(make_bot: BotFactory, slack: FakeSlack, tmp_path: Path, **env: str) -> BotProcess:
    """A bot on the test clock, for a person in New York."""
    slack.add_user("U0ALICE", "alice", tz="America/New_York")
    bot = make_bot(**timer_env(tmp_path, **env))
    await bot.start()
    return bot


async def test_a_follow_up_the_model_schedules_in_30_minutes_runs_once_in_the_thread(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """The model schedules "in 30 minutes" and says when, with Slack's date token; 30 minutes later (test clock) its
    note is run once, as a follow-up, and the answer is posted in the thread; nothing more after."""
    seen: list[str] = []

    def model(body: Body) -> Reply:
        if tool_result(body) is not None:
            return relay(body)
        if "Your note to yourself" in question(body):
            seen.append(question(body))
            return say("The deploy is green.")
        return call("schedule", action="create", in_minutes=30, note="check whether the deploy is green")

    claude.set_default(model)
    bot = await started(make_bot, slack, tmp_path)
    thread = await mentioned(bot, slack, "check the deploy in 30 minutes")
    await wait_until(lambda: answered(slack, thread), timeout=15)
    [said] = replies(slack, thread)
    assert said.startswith("Done: Scheduled")
    assert re.search(r"<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[^>]+>", said)
    assert "(America/New_York)" in said
    advance(tmp_path / "clock", 29 * MINUTE)
    await asyncio.sleep(0.5)
    assert len(replies(slack, thread)) == 1
    advance(tmp_path / "clock", MINUTE)
    await wait_until(lambda: answered(slack, thread, 2), timeout=15)
    assert replies(slack, thread)[1] == "The deploy is green."
    [asked] = seen
    assert "is due now" in asked and "check whether the deploy is green" in asked
    advance(tmp_path / "clock", 60 * MINUTE)
    await asyncio.sleep(0.5)
    assert len(replies(slack, thread)) == 2 and len(seen) == 1
    assert await schedules(redis).list_thread(thread) == []


async def test_a_check_every_10_minutes_until_the_goal_is_met_stops_when_the_model_cancels_it(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """Every 10 minutes until the goal is met: the first run finds it not yet, the second calls cancel with a reason
    (the run told it how); then no run comes however far the clock goes."""
    runs: list[str] = []

    def model(body: Body) -> Reply:
        if tool_result(body) is not None:
            return relay(body)
        asked = question(body)
        if "Your note to yourself" not in asked:
            return call("schedule", action="create", every_minutes=10, until_goal=True, note="is the deploy green yet?")
        runs.append(asked)
        if len(runs) == 1:
            return say("Not green yet.")
        found = re.search(r"schedule_id=(\w+) and a reason", asked)
        assert found, asked
        return call("schedule", action="cancel", schedule_id=found.group(1), reason="the deploy is green")

    claude.set_default(model)
    bot = await started(make_bot, slack, tmp_path)
    thread = await mentioned(bot, slack, "tell us when the deploy is green")
    await wait_until(lambda: answered(slack, thread), timeout=15)
    assert "when you cancel it with the goal met" in replies(slack, thread)[0]
    advance(tmp_path / "clock", 10 * MINUTE)
    await wait_until(lambda: answered(slack, thread, 2), timeout=15)
    assert replies(slack, thread)[1] == "Not green yet."
    # The run has finished (left the inbox) before the next period: a run still going would have it left out.
    inbox = schedules(redis).space.inbox(thread)
    await wait_until(lambda: _empty(redis, inbox), timeout=10)
    advance(tmp_path / "clock", 10 * MINUTE)
    await wait_until(lambda: answered(slack, thread, 3), timeout=15)
    assert replies(slack, thread)[2].startswith("Done: Cancelled schedule")
    assert "(the deploy is green)" in replies(slack, thread)[2]
    assert "run 2" in runs[1]
    assert await schedules(redis).list_thread(thread) == []
    advance(tmp_path / "clock", 60 * MINUTE)
    await asyncio.sleep(1.0)
    assert len(runs) == 2 and len(replies(slack, thread)) == 3


async def test_the_per_thread_limit_and_minimum_interval_give_the_model_a_clear_error(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, tmp_path: Path
) -> None:
    """With one schedule allowed per thread: the second is refused, naming the limit; every 2 minutes is refused,
    naming the minimum; the model reads each as an error result and people read it in its answer."""
    asks = iter(
        [
            {"action": "create", "in_minutes": 30, "note": "first"},
            {"action": "create", "in_minutes": 40, "note": "second"},
        ]
    )
    errors: list[tuple[str, bool]] = []

    def model(body: Body) -> Reply:
        result = tool_result(body)
        if result is not None:
            errors.append(result)
            following = next(asks, None)
            return call("schedule", **following) if following else relay(body)
        if "every 2 minutes" in question(body):
            return call("schedule", action="create", every_minutes=2, until_goal=True, note="poll")
        return call("schedule", **next(asks))

    claude.set_default(model)
    bot = await started(make_bot, slack, tmp_path, SCHEDULES_PER_THREAD="1")
    thread = await mentioned(bot, slack, "remind us twice")
    await wait_until(lambda: answered(slack, thread), timeout=15)
    [answer] = replies(slack, thread)
    assert [error for _, error in errors] == [False, True]
    assert "already has 1 active schedules, the most it may have (1): cancel one first" in errors[1][0]
    assert answer.startswith("I could not: ") and "the most it may have (1)" in answer
    other = await mentioned(bot, slack, "check every 2 minutes")
    await wait_until(lambda: answered(slack, other), timeout=15)
    [answer] = replies(slack, other)
    assert errors[-1][1] and "may run at most every 5 minutes, not every 2 minutes" in answer


async def test_a_cron_schedule_fires_at_its_next_cron_time_in_the_persons_zone(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """ "Every day at 09:00" for someone in New York: nothing a minute before 09:00 New York time, one run at it."""
    runs: list[str] = []

    def model(body: Body) -> Reply:
        if tool_result(body) is not None:
            return relay(body)
        if "Your note to yourself" in question(body):
            runs.append(question(body))
            return say("Good morning: here is the summary.")
        return call("schedule", action="create", cron="0 9 * * *", count=3, note="post the morning summary")

    claude.set_default(model)
    bot = await started(make_bot, slack, tmp_path)
    thread = await mentioned(bot, slack, "every morning at 9 post a summary")
    await wait_until(lambda: answered(slack, thread), timeout=15)
    assert "cron '0 9 * * *' in America/New_York" in replies(slack, thread)[0]
    [made] = await schedules(redis).list_thread(thread)
    nine = next_nine_in_new_york(time.time())
    assert made.next_at == nine
    advance(tmp_path / "clock", nine - time.time() - MINUTE)
    await asyncio.sleep(0.5)
    assert runs == []
    advance(tmp_path / "clock", MINUTE + 1)
    await wait_until(lambda: answered(slack, thread, 2), timeout=15)
    assert replies(slack, thread)[1] == "Good morning: here is the summary."
    [asked] = runs
    assert "run 1 of 3" in asked and "by cron '0 9 * * *'" in asked
    [left] = await schedules(redis).list_thread(thread)
    assert left.next_at == nine + 86400 or abs(left.next_at - nine - 86400) == 3600  # a DST change in between


def next_nine_in_new_york(after: float) -> float:
    """The next 09:00 in New York after `after`."""
    zone = ZoneInfo("America/New_York")
    local = datetime.fromtimestamp(after, zone)
    nine = local.replace(hour=9, minute=0, second=0, microsecond=0)
    if nine.timestamp() <= after:
        nine = (nine + timedelta(days=1)).replace(hour=9)
    return datetime(nine.year, nine.month, nine.day, 9, tzinfo=zone).timestamp()


async def _empty(redis: Redis, key: str) -> bool:
    return not await redis.llen(key)
