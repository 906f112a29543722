"""LOG_FORMAT=json through the running bot: one JSON object a line, each task's ids on its records, no text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.conftest import BotFactory

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"


def mention(slack: FakeSlack, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    """A mention of the bot by Alice, as Slack would deliver it (and keep it)."""
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    """The texts of the bot's messages in the thread."""
    return [str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)]


def ids(line: dict[str, Any]) -> tuple[object, ...]:
    """A JSON line's workspace, channel, thread and task id."""
    return tuple(line.get(key) for key in ("team", "channel", "thread", "task_id"))


async def test_json_logs_carry_each_tasks_ids_and_no_message_text(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """With LOG_FORMAT=json every line the process writes is a JSON object with time, level, logger, message and
    DYNO; intake's record of a redelivered mention and each task's records of an overloaded model carry that task's
    workspace, channel, thread and id; neither the questions nor the answers appear anywhere."""
    bot = make_bot(LOG_FORMAT="json")  # DYNO=web.1, LOG_LEVEL=INFO
    await bot.start()
    for answer in ("Confidential answer about the merger", "Second confidential answer"):
        claude.reply_error(529, "overloaded_error", "Overloaded", retry_after=0)  # logged, with a retry, in the task
        claude.reply_text(answer)
    first = mention(slack, "private question about the merger")
    assert await bot.post_event(first) == 200
    assert await bot.post_event(first, retry_num=1, retry_reason="http_timeout") == 200  # Slack's retry: logged
    thread_ts = str(first["event"]["ts"])
    await wait_until(lambda: "Confidential answer about the merger" in replies(slack, thread_ts), timeout=20)
    second = mention(slack, "another private question", thread_ts=thread_ts)
    assert await bot.post_event(second) == 200
    await wait_until(lambda: "Second confidential answer" in replies(slack, thread_ts), timeout=20)
    assert await bot.stop() == 0

    log = bot.output()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines and all(isinstance(line, dict) for line in lines)
    assert all({"time", "level", "logger", "message"} <= line.keys() and line["dyno"] == "web.1" for line in lines)
    first_ids = (slack.team_id, CHANNEL, thread_ts, first["event_id"])
    second_ids = (slack.team_id, CHANNEL, thread_ts, second["event_id"])
    [redelivered] = [line for line in lines if "delivered again" in line["message"]]
    assert ids(redelivered) == first_ids
    retries = [ids(line) for line in lines if line["message"].startswith("Claude call failed")]
    assert retries == [first_ids, second_ids]
    assert {ids(line) for line in lines if "task_id" in line} == {first_ids, second_ids}
    assert any(line["logger"] == "bot.runtime.app" and "task_id" not in line for line in lines)  # outside any task
    written = ("private question about the merger", "another private question", "merger")
    answers = ("Confidential answer", "Second confidential answer")
    for text in (*written, *answers):
        assert text not in log, text
