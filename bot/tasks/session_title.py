"""The title a thread's agent session gets from its first question: the question's first line, as plain text."""

from __future__ import annotations

import re

from store.titles import MAX_TITLE_CHARS

# Slack's markup in message text: <@U123>, <#C123|name>, <!here>, <https://x|label>, <https://x>.
_MARKUP = re.compile(r"<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>")
_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}


def title_from_question(text: str) -> str:
    """The question's first non-blank line, Slack markup made readable, cut to what Slack keeps (200 characters,
    ending in "…" when cut); "" for a question with no words (a file shared alone)."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = _MARKUP.sub(_readable, line)
    for entity, character in _ENTITIES.items():  # &amp; last: "&amp;lt;" is the text "&lt;"
        line = line.replace(entity, character)
    line = " ".join(line.split())
    if len(line) > MAX_TITLE_CHARS:
        line = line[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return line


def _readable(match: re.Match[str]) -> str:
    sigil, target, label = match.group(1), match.group(2), match.group(3)
    if sigil == "!":  # <!here>, <!subteam^S123|@team>
        return label or f"@{target}"
    if sigil in ("@", "#"):
        return f"{sigil}{label.lstrip(sigil)}" if label else f"{sigil}{target}"
    return label or target
