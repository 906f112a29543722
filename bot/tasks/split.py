"""Splitting a long Markdown answer into Slack messages, at sensible places.

A message's `markdown_text` holds at most 12,000 characters. An answer longer than a part is cut between
paragraphs; a paragraph longer than a part, between lines. A code block is never cut silently: when one must be cut,
its part closes the fence and the next part opens it again with the same language, so each message renders
on its own and the parts read in order as the whole answer.
"""

from __future__ import annotations

import re

PART_CHARS = 11_000
_FENCE = re.compile(r"^\s*(```+|~~~+)(.*)$")


def split_markdown(text: str, limit: int = PART_CHARS) -> list[str]:
    """The answer as parts of at most `limit` characters, in order."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current: list[str] = []  # lines of the part being filled
    size = 0
    fence: str | None = None  # the opening line of the code block we are in, if any
    budget = limit - 8  # room to close a code block at the end of a part

    def flush() -> None:
        nonlocal current, size
        lines = [*current, fence_closer(fence)] if fence else current
        parts.append("\n".join(lines).strip("\n"))
        current = [fence] if fence else []
        size = len(fence) + 1 if fence else 0

    for line in _lines(text, budget // 2):
        match = _FENCE.match(line)
        if size + len(line) + 1 > budget and current:
            cut = _last_paragraph_break(current) if fence is None else None
            if cut:
                carried = current[cut:]
                current = current[:cut]
                flush()
                current, size = carried, sum(len(line) + 1 for line in carried)
            else:
                flush()
        current.append(line)
        size += len(line) + 1
        if match:
            fence = None if fence else line.strip()
    if current:
        parts.append("\n".join(current).strip("\n"))
    return [part for part in parts if part.strip()]


def fence_closer(opening: str | None) -> str:
    """The line that closes a code block opened by `opening`."""
    match = _FENCE.match(opening or "")
    return match.group(1) if match else "```"


def _last_paragraph_break(lines: list[str]) -> int | None:
    """Index after the last blank line outside code (a good place to cut), if there is one worth using."""
    inside = False
    best: int | None = None
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            inside = not inside
        elif not line.strip() and not inside and index > len(lines) // 3:
            best = index + 1
    return best


def _lines(text: str, longest: int) -> list[str]:
    """The text's lines, any line longer than `longest` cut at a space where possible."""
    out: list[str] = []
    for line in text.split("\n"):
        while len(line) > longest:
            cut = line.rfind(" ", 0, longest)
            cut = cut if cut > longest // 2 else longest
            out.append(line[:cut])
            line = line[cut:].lstrip(" ")
        out.append(line)
    return out
