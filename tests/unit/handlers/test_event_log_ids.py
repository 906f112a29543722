"""Scenario tests: what intake logs while it records an event carries the event's workspace, channel, thread and id."""

from __future__ import annotations

import logging

import pytest

from bot.runtime.app import Bot
from bot.runtime.logs import ContextFilter
from tests.fakes import FakeSlack, app_mention_event, event_envelope, message_event
from tests.unit.handlers.scenario import dispatch

CHANNEL = "C0GENERAL"


def ids(record: logging.LogRecord) -> tuple[str | None, ...]:
    """The ids ContextFilter attached to a record."""
    return tuple(getattr(record, name) for name in ("team_id", "channel_id", "thread_ts", "task_id"))


async def redelivered(bot: Bot, envelope: dict[str, object], caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    """Dispatch the envelope, then Slack's retry of it; the record intake makes of the retry."""
    caplog.handler.addFilter(ContextFilter("test.1"))
    assert await dispatch(bot, envelope) == 200
    with caplog.at_level(logging.INFO, logger="bot.tasks.intake"):
        assert await dispatch(bot, envelope, retry_num=1, retry_reason="http_timeout") == 200
    [record] = [record for record in caplog.records if "delivered again" in record.getMessage()]
    return record


async def test_a_mentions_records_carry_its_ids(bot: Bot, slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """Intake's record of a redelivered mention names its workspace, channel, thread (its own ts) and event id."""
    event = app_mention_event(f"<@{slack.bot_user_id}> hello", user="U0ALICE", channel=CHANNEL)
    envelope = event_envelope(event, team_id=slack.team_id)
    record = await redelivered(bot, envelope, caplog)
    assert ids(record) == (slack.team_id, CHANNEL, event["ts"], envelope["event_id"])


async def test_a_thread_messages_records_carry_its_ids(
    bot: Bot, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """Intake's record of a redelivered message in a thread with an agent names the thread and the event id."""
    started = app_mention_event(f"<@{slack.bot_user_id}> hello", user="U0ALICE", channel=CHANNEL)
    assert await dispatch(bot, event_envelope(started, team_id=slack.team_id)) == 200  # the thread has an agent now
    event = message_event("a later word", user="U0BOB", channel=CHANNEL, thread_ts=started["ts"])
    envelope = event_envelope(event, team_id=slack.team_id)
    record = await redelivered(bot, envelope, caplog)
    assert ids(record) == (slack.team_id, CHANNEL, started["ts"], envelope["event_id"])
