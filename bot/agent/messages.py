"""Message rendering: a thread's turns become the messages Claude reads (context.py fits them to the budget)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bot.core.ports import ThreadMessage
from store.models import Turn

CONVERSATION_START = "(Earlier messages in this Slack thread follow.)"


def strip_mention(text: str, bot_user_id: str) -> str:
    """The text of a mention without the leading or embedded mention of the bot itself."""
    return re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text).strip()


def speaker_label(turn: Turn) -> str:
    """Who said a user turn, as the model sees it: 'Name (<@U123>)', or just the mention without a name."""
    if turn.user_id is None:
        return turn.user_name or "someone"
    mention = f"<@{turn.user_id}>"
    return f"{turn.user_name} ({mention})" if turn.user_name else mention


def render(turn: Turn) -> str:
    """A turn's text as it goes into a message."""
    if turn.role == "assistant":
        return turn.text
    return f"{speaker_label(turn)}: {turn.text}"


def build_messages(turns: Iterable[Turn]) -> list[dict[str, Any]]:
    """Messages for the Messages API: consecutive turns of one role are merged, and the first one is a user's.

    Several people can speak in a row in a thread, but the API wants user and assistant to alternate.
    """
    messages: list[dict[str, Any]] = []
    for turn in turns:
        text = render(turn)
        if not text.strip():
            continue
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"] += "\n\n" + text
        else:
            messages.append({"role": turn.role, "content": text})
    if messages and messages[0]["role"] == "assistant":
        messages.insert(0, {"role": "user", "content": CONVERSATION_START})
    return messages


def since_last_reset(messages: Iterable[ThreadMessage]) -> list[ThreadMessage]:
    """The messages posted after the thread's agent was last reset (all of them if it never was)."""
    messages = list(messages)
    forgotten_until = max((m.reset_at for m in messages if m.reset_at is not None), default=0.0)
    return [m for m in messages if float(m.ts) > forgotten_until and m.reset_at is None]


def turns_from_thread(
    messages: Iterable[ThreadMessage], *, before_ts: str, bot_user_id: str, names: dict[str, str]
) -> list[Turn]:
    """Turns for the messages of a thread posted before the agent existed (the bot's own become its turns).

    Messages up to the latest reset note are left out: the agent was told to forget them.
    """
    messages = since_last_reset(messages)
    turns: list[Turn] = []
    for message in messages:
        if float(message.ts) >= float(before_ts) or message.from_other_bot:
            continue
        if message.from_this_bot:
            turns.append(Turn("assistant", message.text, ts=message.ts))
        else:
            text = strip_mention(message.text, bot_user_id)
            uid = message.user_id
            turns.append(Turn("user", text, user_id=uid, user_name=names.get(uid or ""), ts=message.ts))
    return turns
