"""Slack's feedback buttons under an answer, and the listener that records a click on them (store/feedback.py).

Slack sends a click as a block_actions payload whose actions[0] is {type: "feedback_buttons", action_id, block_id,
value, text, action_ts}: which button was pressed is known only from the value, so the two buttons' values differ.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from store.feedback import AnswerVote, FeedbackStore, Vote, VoteOutcome
from store.models import ThreadRef

log = logging.getLogger(__name__)

FEEDBACK_ACTION = "answer_feedback"
POSITIVE = "positive"
NEGATIVE = "negative"
_VOTES = {POSITIVE: Vote.UP, NEGATIVE: Vote.DOWN}
MAX_BLOCK_ID_CHARS = 255  # Slack refuses a longer block_id


def feedback_block(block_id: str) -> dict[str, Any]:
    """A context_actions block holding the thumbs up and down buttons, for the last message of a finished answer.

    Slack wants a new block_id for each version of a message, so the caller passes one (the message's, or a task's).
    """
    if not 0 < len(block_id) <= MAX_BLOCK_ID_CHARS:
        raise ValueError(f"a block_id has 1 to {MAX_BLOCK_ID_CHARS} characters, not {len(block_id)}")
    return {
        "type": "context_actions",
        "block_id": block_id,
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": _button("Good answer", POSITIVE, "Mark this answer as helpful"),
                "negative_button": _button("Bad answer", NEGATIVE, "Mark this answer as not helpful"),
            }
        ],
    }


def _button(text: str, value: str, label: str) -> dict[str, Any]:
    # Slack's limits: text (plain_text only) and accessibility_label up to 75 characters each.
    return {"text": {"type": "plain_text", "text": text}, "value": value, "accessibility_label": label}


def parse_feedback_click(body: dict[str, Any]) -> AnswerVote | None:
    """The vote a click on the feedback buttons casts, or None (logged at WARNING) if the payload is malformed or
    names something unknown: a value of neither button, ids or ts that are not Slack's."""
    try:
        return _answer_vote(body)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # Only Slack, or someone holding the signing secret, gets this far; bounded, as the fields are the sender's.
        log.warning("ignoring a malformed feedback click: %s %.100s", type(exc).__name__, exc)
        return None


def _answer_vote(body: dict[str, Any]) -> AnswerVote:
    action = _object(body["actions"][0])
    value = _text(action.get("value"))
    if value not in _VOTES:
        raise ValueError(f"a value of neither feedback button: {value[:40]!r}")
    container, message = _object(body.get("container") or {}), _object(body.get("message") or {})
    team = _object(body.get("team") or {})
    user = _object(body["user"])
    # An org-wide install can get a null team; the person's own workspace is then the one that counts.
    team_id = _text(team.get("id") or user.get("team_id"))
    channel_id = _text(container.get("channel_id") or _object(body["channel"])["id"])
    answer_ts = _text(container.get("message_ts") or message["ts"])
    # An answer at the top level of a conversation (a DM) starts its own thread: its ts is the thread's.
    thread_ts = _text(message.get("thread_ts") or container.get("thread_ts") or answer_ts)
    return AnswerVote(ThreadRef(team_id, channel_id, thread_ts), answer_ts, _text(user["id"]), _VOTES[value])


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"a {type(value).__name__} where Slack sends an object")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} where Slack sends a string")
    return value


def register_feedback_listener(app: AsyncApp, feedback: FeedbackStore) -> None:
    """Attach the listener of the feedback buttons to the Bolt app."""

    async def handle_answer_feedback(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        vote = parse_feedback_click(body)
        if vote is None:
            return
        # A Redis failure propagates: Bolt answers 500, and Slack shows the person that the click failed.
        outcome = await feedback.record(vote)
        thread = vote.thread.encode()
        if outcome is VoteOutcome.NO_AGENT:
            log.warning("feedback on %s in %s, a thread without an agent: not recorded", vote.answer_ts, thread)
        elif outcome is VoteOutcome.FULL:
            log.warning("feedback on %s in %s: the thread holds its cap of votes, not recorded", vote.answer_ts, thread)
        else:
            log.debug("feedback on %s in %s: %s", vote.answer_ts, thread, outcome.name)

    app.action(FEEDBACK_ACTION)(handle_answer_feedback)
