"""How the page draws a conversation: its top-level messages in order, each with its thread's replies."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

Args = dict[str, Any]


def channel_view(messages: list[Args], more: Callable[[Args], Args]) -> list[Args]:
    """The page's view of a channel's `messages` (in ts order, replies included); `more` adds a message's agent
    fields (stream, task cards, feedback, session)."""
    top: list[Args] = []
    replies: dict[str, list[Args]] = collections.defaultdict(list)
    for message in messages:
        view = message_view(message) | more(message)
        parent = message.get("thread_ts")
        if parent and parent != message["ts"]:
            replies[parent].append(view)
        else:
            top.append(view)
    for view in top:
        view["replies"] = replies.get(view["ts"], [])
    return top


def message_view(message: Args) -> Args:
    """What the page shows of one message besides its agent fields."""
    return {
        "ts": message["ts"],
        "user": message.get("user"),
        "bot": bool(message.get("bot_id")),
        "text": str(message.get("text") or ""),
        "edited": "edited" in message,
        "reactions": [reaction.get("name") for reaction in message.get("reactions", [])],
    }
