"""What the tests of the emulator's agent features share: the channel, the feedback block, a thread to work in.
(Their fixtures, a workspace with the features and a client, are in conftest.py.)"""

from __future__ import annotations

from typing import Any

from tests.fakes import FakeSlack

CHANNEL = "C0GENERAL"
FEEDBACK_BLOCK: dict[str, Any] = {
    "type": "context_actions",
    "elements": [
        {
            "type": "feedback_buttons",
            "action_id": "answer_feedback",
            "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": "positive"},
            "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": "negative"},
        }
    ],
}


def thread(slack: FakeSlack, channel: str = CHANNEL) -> str:
    return str(slack.post_user_message(channel, "a question", user="U0ALICE")["event"]["ts"])
