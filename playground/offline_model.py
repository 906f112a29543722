"""The playground's stand-in for Claude when no ANTHROPIC_API_KEY is set: deterministic, and says it is offline.

It answers through the fake Messages API, so the bot runs exactly as it does against Claude: streaming,
usage and prompt-cache figures, summaries of long threads. Answers stream slowly enough to be watched, and
to be interrupted by a restart.
"""

from __future__ import annotations

import re
from typing import Any

from .anthropic_api import Reply, user_texts

OFFLINE_NOTE = "_Offline stand-in model: set `ANTHROPIC_API_KEY` to talk to Claude._"
# About 40 characters a second: an answer takes a few seconds to stream.
CHUNK_SIZE = 4
CHUNK_DELAY = 0.1
# The bot's turns read "name (<@U123>): text"; the stand-in answers the text.
_SPEAKER = re.compile(r"^[^\n]*?\(<@[A-Z0-9]+>\):\s*")
_STATE_NOTE = "[Agent state"
# Asked for something long, the stand-in writes this many paragraphs: about half a minute of streaming, time enough
# to watch task updates or press Stop half way.
_LONG_REQUEST = re.compile(r"\b(long|essay|story|in detail|detailed)\b", re.IGNORECASE)
LONG_ANSWER_PARAGRAPHS = 12


def offline_responder(request: dict[str, Any]) -> Reply:
    """A deterministic answer to a Messages API request: a running summary, or a reply to the latest message."""
    system = " ".join(user_texts({"system": request.get("system", "")}))
    if "running summary" in system:
        return _reply(_summary(request))
    return _reply(_answer(request))


def _reply(text: str) -> Reply:
    return Reply([{"type": "text", "text": text}], chunk_size=CHUNK_SIZE, chunk_delay=CHUNK_DELAY)


def _answer(request: dict[str, Any]) -> str:
    messages = request.get("messages", [])
    latest = _latest_user_text(messages)
    earlier = sum(1 for message in messages if message.get("role") == "assistant")
    memory = (
        f"I have {earlier} earlier answer{'s' if earlier != 1 else ''} of this thread in view."
        if earlier
        else "This is the first thing I have been asked in this thread."
    )
    answer = f"{OFFLINE_NOTE}\n\nYou said: “{latest}”\n\n{memory}"
    if _LONG_REQUEST.search(latest):
        answer += "".join(f"\n\n{_paragraph(n)}" for n in range(1, LONG_ANSWER_PARAGRAPHS + 1))
    return answer


def _paragraph(number: int) -> str:
    return (
        f"Paragraph {number} of {LONG_ANSWER_PARAGRAPHS}: a stand-in for a long answer, written slowly so that "
        "you can watch it grow, stop it, or restart the bot half way."
    )


def _summary(request: dict[str, Any]) -> str:
    said = [_first_line(text) for text in user_texts({"messages": request.get("messages", [])})]
    topics = "; ".join(text for text in said if text and not text.startswith(_STATE_NOTE))
    return f"(offline summary) Earlier in this thread: {topics[:600]}"


def _latest_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        texts = [t for t in user_texts({"messages": [message]}) if not t.startswith(_STATE_NOTE)]
        if texts:
            return _first_line(texts[-1])[:300]
    return ""


def _first_line(text: str) -> str:
    return _SPEAKER.sub("", text.strip()).split("\n", 1)[0].strip()
