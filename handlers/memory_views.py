"""Block Kit for `/agent memory`: the channel's memory files, their sizes and an excerpt, and admins' buttons."""

from __future__ import annotations

from typing import Any

from store.memory import MemoryLimits, MemorySnapshot

Block = dict[str, Any]
REMOVE_MEMORY_FILE = "agent_memory_remove"
CLEAR_MEMORY = "agent_memory_clear"
# A message holds at most 50 blocks: the header, the buttons, and this many files (the rest are named in a line).
SHOWN_FILES = 20
EXCERPT_CHARS = 300


def mrkdwn_escape(text: str) -> str:
    """Text shown as it is in Slack's mrkdwn: its control characters escaped, code fences broken."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("```", "`\u200b`\u200b`")


def memory_summary(channel_id: str, snapshot: MemorySnapshot, limits: MemoryLimits) -> str:
    """One line: how much the channel's memory holds, against its caps."""
    return (
        f"Memory of <#{channel_id}>: {len(snapshot.files)} of {limits.max_files} files, "
        f"{snapshot.total_bytes:,} of {limits.max_bytes:,} bytes. Every thread's agent in this channel reads and "
        "writes it; `/agent reset` does not clear it."
    )


def memory_blocks(channel_id: str, snapshot: MemorySnapshot, limits: MemoryLimits, *, may_change: bool) -> list[Block]:
    """The listing: a file per section with its size and an excerpt, a remove button on each for admins, and a
    clear-all button (with Slack's confirmation dialog) at the end."""
    blocks: list[Block] = [_section(memory_summary(channel_id, snapshot, limits))]
    files = list(snapshot.files.items())
    for path, text in files[:SHOWN_FILES]:
        excerpt = text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"
        section = _section(f"*{mrkdwn_escape(path)}* ({len(text.encode()):,} bytes)\n```{mrkdwn_escape(excerpt)}```")
        if may_change:
            section["accessory"] = _button(REMOVE_MEMORY_FILE, "Remove", path[:2000], confirm=f"Remove {path}?")
        blocks.append(section)
    if len(files) > SHOWN_FILES:
        rest = ", ".join(mrkdwn_escape(path) for path, _ in files[SHOWN_FILES:])
        blocks.append(_context(f"Also: {rest}"[:3000]))
    if may_change and files:
        clear = _button(CLEAR_MEMORY, "Clear all", channel_id, confirm="Clear every file of this channel's memory?")
        blocks.append({"type": "actions", "elements": [clear]})
    return blocks


def _button(action_id: str, label: str, value: str, *, confirm: str) -> Block:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "style": "danger",
        "value": value,
        "confirm": {
            "title": {"type": "plain_text", "text": "Are you sure?"},
            "text": {"type": "mrkdwn", "text": mrkdwn_escape(confirm)[:300]},
            "confirm": {"type": "plain_text", "text": label},
            "deny": {"type": "plain_text", "text": "Cancel"},
        },
    }


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
