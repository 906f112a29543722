"""A scripted model for answers longer than max_tokens: it writes one long text across as many requests as it takes.

The fake cuts every reply at max_tokens (stop_reason "max_tokens"); an app that continues the answer sends the
conversation again with the part already written (as assistant turns, each perhaps followed by a short user turn
asking it to continue). `continuing(full_text)` answers each such request with the rest of the text, so a test can
check that what the app shows at the end is the whole text, once, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .anthropic_api import Reply

Body = dict[str, Any]
# A user turn asking the model to go on is short and says so; a longer one is a new question.
CONTINUE_WORD = "continu"
MAX_CONTINUE_TURN = 500


def continuing(full_text: str, *, chunk_size: int = 8, chunk_delay: float = 0.0) -> Callable[[Body], Reply]:
    """A responder (for FakeAnthropic.set_default or reply_with) that answers with the part of `full_text` the
    conversation's assistant turns since the question do not hold yet.

    LookupError if those turns are not the beginning of `full_text` (the app lost or changed a piece).
    """

    def respond(request: Body) -> Reply:
        rest = full_text[written_so_far(request.get("messages", []), full_text) :]
        return Reply([{"type": "text", "text": rest}] if rest else [], chunk_size=chunk_size, chunk_delay=chunk_delay)

    return respond


def written_so_far(messages: list[Body], full_text: str) -> int:
    """How much of `full_text` the assistant turns after the last question hold (an index into full_text)."""
    # Try the furthest plausible question first: a question that itself reads like "please continue the story"
    # would otherwise be taken for a request to go on, and the answers before it for pieces of this one.
    for question in _question_candidates(messages):
        pieces = [text for message in messages[question + 1 :] for text in _assistant_texts(message)]
        end = _end_of_pieces(pieces, full_text)
        if end is not None:
            return end
    raise LookupError("the assistant turns since the question are not the beginning of the scripted text")


def _question_candidates(messages: list[Body]) -> list[int]:
    """Indexes of the trailing user turns that may be the question, furthest first."""
    candidates: list[int] = []
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") != "user":
            continue
        candidates.append(index)
        if not _asks_to_continue(messages, index):
            break
    return candidates[::-1]


def _asks_to_continue(messages: list[Body], index: int) -> bool:
    text = " ".join(_texts(messages[index]))
    follows_answer = index > 0 and messages[index - 1].get("role") == "assistant"
    return follows_answer and len(text) <= MAX_CONTINUE_TURN and CONTINUE_WORD in text.lower()


def _end_of_pieces(pieces: list[str], full_text: str) -> int | None:
    """Where the pieces, in order, end in full_text (whitespace at their seams may differ), or None."""
    position = 0
    for piece in pieces:
        if full_text.startswith(piece, position):
            position += len(piece)
            continue
        # The app may have trimmed a piece (a prefill must not end with whitespace) or the text at a seam.
        trimmed, start = piece.strip(), position
        while start < len(full_text) and full_text[start].isspace():
            start += 1
        if not full_text.startswith(trimmed, start):
            return None
        position = start + len(trimmed)
    return position


def _texts(message: Body) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    blocks = content if isinstance(content, list) else []
    return [str(block.get("text", "")) for block in blocks if isinstance(block, dict) and block.get("type") == "text"]


def _assistant_texts(message: Body) -> list[str]:
    return _texts(message) if message.get("role") == "assistant" else []


__all__ = ["continuing", "written_so_far"]
