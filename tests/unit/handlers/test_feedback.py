"""The feedback buttons: the block Slack is sent, and clicks on it as signed block_actions requests through the real
Bolt app, recorded in a real Redis."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from redis.asyncio import Redis
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.models.blocks import Block, ContextActionsBlock

from bot.runtime.app import Bot
from handlers.feedback import FEEDBACK_ACTION, NEGATIVE, POSITIVE, feedback_block, parse_feedback_click
from store.feedback import AnswerVote, FeedbackCounts, FeedbackStore, Vote
from store.models import ThreadRef
from tests.fakes import (
    DEFAULT_BOT_ID,
    DEFAULT_BOT_USER_ID,
    FakeSlack,
    block_actions_form,
    block_actions_payload,
    new_ts,
    signed_form_request,
)
from tests.unit.handlers.scenario import SECRET
from tests.unit.store.conftest import SPACE
from tests.unit.store.test_feedback import with_agent

CHANNEL = "C0GENERAL"
THREAD_TS = "1700000000.000100"
ANSWER_TS = "1700000003.000200"
BLOCK_ID = "feedback-Ev1"


def feedback_click(
    team_id: str, value: str, *, user: str = "U0ALICE", answer_ts: str = ANSWER_TS, thread_ts: str | None = THREAD_TS
) -> dict[str, Any]:
    """The block_actions payload of `user` pressing one of the feedback buttons under a bot's answer (Slack's shape:
    SLACK_AGENT_DOCS.md section 5; the action is the feedback_buttons element's, with the pressed button's value)."""
    block = feedback_block(BLOCK_ID)
    message: dict[str, Any] = {
        "type": "message",
        "user": DEFAULT_BOT_USER_ID,
        "bot_id": DEFAULT_BOT_ID,
        "text": "The answer.",
        "ts": answer_ts,
        "blocks": [block],
    }
    if thread_ts is not None:
        message["thread_ts"] = thread_ts
    payload = block_actions_payload(
        FEEDBACK_ACTION, value, team_id=team_id, channel_id=CHANNEL, user_id=user, message=message, block_id=BLOCK_ID
    )
    buttons = block["elements"][0]
    pressed = buttons["positive_button"] if value == POSITIVE else buttons["negative_button"]
    payload["actions"] = [
        {
            "type": "feedback_buttons",
            "action_id": FEEDBACK_ACTION,
            "block_id": BLOCK_ID,
            "value": value,
            "text": pressed["text"],
            "action_ts": new_ts(),
        }
    ]
    return payload


async def click(bot: Bot, payload: dict[str, Any]) -> int:
    """Deliver a click as Slack does (a signed form POST); returns Bolt's HTTP status."""
    form = block_actions_form(payload)
    response = await bot.bolt.async_dispatch(AsyncBoltRequest(body=form, headers=signed_form_request(form, SECRET)))
    return response.status


def test_the_block_is_slacks_feedback_buttons_within_its_limits() -> None:
    """slack_sdk's own model of context_actions reads the block back unchanged, without a warning about a key it
    does not know; the two buttons carry different values, since a click tells them apart only by value."""
    block = feedback_block(BLOCK_ID)
    parsed = Block.parse(block)
    assert isinstance(parsed, ContextActionsBlock) and parsed.to_dict() == block
    [buttons] = block["elements"]
    assert buttons["type"] == "feedback_buttons" and buttons["action_id"] == FEEDBACK_ACTION
    positive, negative = buttons["positive_button"], buttons["negative_button"]
    assert (positive["value"], negative["value"]) == (POSITIVE, NEGATIVE)
    for button in (positive, negative):
        assert button["text"]["type"] == "plain_text"
        assert len(button["text"]["text"]) <= 75 and 0 < len(button["accessibility_label"]) <= 75


@pytest.mark.parametrize("block_id", ["", "x" * 256])
def test_a_block_id_slack_would_refuse_is_refused(block_id: str) -> None:
    """A block_id is 1 to 255 characters."""
    with pytest.raises(ValueError):
        feedback_block(block_id)


async def test_a_click_is_a_vote_and_the_other_button_moves_it(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Thumbs up counts for the thread; the same button again changes nothing; thumbs down moves the vote."""
    ref = await with_agent(redis, ThreadRef(slack.team_id, CHANNEL, THREAD_TS))
    store = FeedbackStore(redis, SPACE)
    assert await click(bot, feedback_click(slack.team_id, POSITIVE)) == 200
    assert (await store.thread_feedback(ref)).counts == FeedbackCounts(up=1, down=0)
    assert await click(bot, feedback_click(slack.team_id, POSITIVE)) == 200
    assert await store.channel_feedback(slack.team_id, CHANNEL) == FeedbackCounts(up=1, down=0)
    assert await click(bot, feedback_click(slack.team_id, NEGATIVE)) == 200
    feedback = await store.thread_feedback(ref)
    assert feedback.counts == FeedbackCounts(up=0, down=1) and feedback.down_voted[0].answer_ts == ANSWER_TS
    assert await store.team_feedback(slack.team_id) == FeedbackCounts(up=0, down=1)


async def test_a_click_on_a_thread_without_an_agent_is_acknowledged_and_stores_nothing(
    bot: Bot, slack: FakeSlack, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Feedback on an answer whose thread has no agent any more (reset, expired) is logged and not stored."""
    with caplog.at_level(logging.WARNING, logger="handlers.feedback"):
        assert await click(bot, feedback_click(slack.team_id, NEGATIVE)) == 200
    assert "a thread without an agent" in caplog.text
    assert await redis.dbsize() == 0


_DELETE = object()


def change(payload: dict[str, Any], path: str, value: object) -> None:
    """Set (or with _DELETE, remove) the value at a dotted path of a payload; a number indexes a list."""
    *parents, last = path.split(".")
    target: Any = payload
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value


MALFORMED: dict[str, list[tuple[str, object]]] = {
    "unknown value": [("actions.0.value", "positive_feedback")],
    "no value": [("actions.0.value", _DELETE)],
    "no user": [("user", _DELETE)],
    "user id not Slack's": [("user.id", "U1 U2")],
    "answer ts not a ts": [("container.message_ts", "1700000003")],
    "no channel anywhere": [("container.channel_id", _DELETE), ("channel", None)],
    "team is a string": [("team", "T1"), ("user.team_id", _DELETE)],
    "thread ts a number": [("message.thread_ts", 1700000000.0001)],
}


@pytest.mark.parametrize("changes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_click_is_acknowledged_logged_and_stores_nothing(
    bot: Bot,
    slack: FakeSlack,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
    changes: list[tuple[str, object]],
) -> None:
    """Whatever is wrong with a click's payload, Slack gets a 200, the log a warning, and Redis nothing."""
    await with_agent(redis, ThreadRef(slack.team_id, CHANNEL, THREAD_TS))
    before = await redis.dbsize()
    payload = feedback_click(slack.team_id, POSITIVE)
    for path, value in changes:
        change(payload, path, value)
    with caplog.at_level(logging.WARNING, logger="handlers.feedback"):
        assert await click(bot, payload) == 200
    assert "ignoring a malformed feedback click" in caplog.text
    assert await redis.dbsize() == before


def test_the_answer_and_thread_come_from_the_container_or_the_message() -> None:
    """The container names the channel and the answer; the message (or the container) names the thread; a
    top-level answer is its own thread; a null team falls back to the person's workspace."""
    payload = feedback_click("T1", NEGATIVE, user="U0BOB")
    expected = AnswerVote(ThreadRef("T1", CHANNEL, THREAD_TS), ANSWER_TS, "U0BOB", Vote.DOWN)
    assert parse_feedback_click(payload) == expected
    fallback = copy.deepcopy(payload)
    del fallback["container"]["channel_id"], fallback["container"]["message_ts"], fallback["message"]["thread_ts"]
    fallback["team"] = None
    fallback["user"]["team_id"] = "T1"
    assert parse_feedback_click(fallback) == expected  # channel.id, message.ts, container.thread_ts, user.team_id
    # Bolt itself answers 500 to a block_actions payload without actions, before any listener: the parser still copes.
    assert parse_feedback_click({**payload, "actions": []}) is None
    top_level = feedback_click("T1", POSITIVE, thread_ts=None)
    assert parse_feedback_click(top_level) == AnswerVote(
        ThreadRef("T1", CHANNEL, ANSWER_TS), ANSWER_TS, "U0ALICE", Vote.UP
    )
