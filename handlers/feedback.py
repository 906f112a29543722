"""Feedback on answers: the buttons under each finished answer. (Placeholder until the feedback branch merges.)"""

from __future__ import annotations

from typing import Any

FEEDBACK_ACTION = "answer_feedback"


def feedback_block(block_id: str) -> dict[str, Any]:
    """A context_actions block holding the thumbs up / thumbs down buttons."""
    return {
        "type": "context_actions",
        "block_id": block_id,
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": "positive"},
                "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": "negative"},
            }
        ],
    }
