"""Tools the agent can call: `read_thread` runs here; Anthropic's server tools run on Anthropic's side."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from bot.agent.messages import since_last_reset
from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from store.models import ThreadRef

log = logging.getLogger(__name__)

# Server tools by the name ANTHROPIC_SERVER_TOOLS uses, with the tool version sent to the API.
SERVER_TOOLS: dict[str, dict[str, Any]] = {
    "web_search": {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    "web_fetch": {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 5},
    "code_execution": {"type": "code_execution_20250825", "name": "code_execution"},
}

# A tool result is capped so one round of tools fits the room the context budget keeps for it.
MAX_RESULT_CHARS = 8_000
MAX_MESSAGE_CHARS = 1_000
TS = re.compile(r"\d{1,12}(?:\.\d{1,6})?")

READ_THREAD = {
    "name": "read_thread",
    "description": (
        "Read messages of the current Slack thread, oldest first, as 'ts name: text' lines. Use it when the "
        "conversation refers to something you no longer see. By default returns the latest messages; pass "
        "before_ts (a message ts) to page further back."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": 200, "description": "How many messages (50)."},
            "before_ts": {"type": "string", "description": "Only messages older than this ts."},
        },
    },
}


@dataclass(frozen=True)
class ToolResult:
    """What a client tool returned, as text for a tool_result block."""

    text: str
    is_error: bool = False


class ToolBox:
    """The tool definitions sent with every model call, and the runner of the client-side ones."""

    def __init__(self, slack: SlackGateway, server_tools: list[str]) -> None:
        self._slack = slack
        self.definitions: list[dict[str, Any]] = [READ_THREAD, *(SERVER_TOOLS[name] for name in server_tools)]

    async def run(self, name: str, tool_input: dict[str, Any], thread: ThreadRef) -> ToolResult:
        """Run one client tool call; problems become an error result the model can read, not an exception."""
        if name != READ_THREAD["name"]:
            return ToolResult(f"unknown tool {name!r}", is_error=True)
        try:
            return ToolResult(await self._read_thread(thread, tool_input))
        except SlackError as exc:
            log.info("read_thread failed: %s", exc)
            return ToolResult(f"could not read the thread: {exc}", is_error=True)
        except (TypeError, ValueError) as exc:
            return ToolResult(f"invalid input: {exc}", is_error=True)

    async def _read_thread(self, thread: ThreadRef, tool_input: dict[str, Any]) -> str:
        if not thread.thread_ts:
            return "This conversation is a direct message, not a thread; everything in it is already in context."
        limit = max(1, min(200, int(tool_input.get("limit", 50))))
        before = tool_input.get("before_ts")
        if before is not None and not TS.fullmatch(str(before)):
            raise ValueError(f"before_ts must be a message ts like 1700000000.000100, not {str(before)[:40]!r}")
        # Only the newest `limit` messages before `before` are read from Slack, not the whole thread.
        tail = await self._slack.recent_messages(thread, limit=limit, before_ts=before)
        messages = since_last_reset(tail.messages)  # a reset agent forgot the rest
        forgotten = any(message.reset_at is not None for message in tail.messages)
        lines: list[str] = []
        for message in reversed(messages):  # newest first, so the cap cuts the oldest
            who = "you (the bot)" if message.from_this_bot else f"<@{message.user_id}>"
            text = message.text if len(message.text) <= MAX_MESSAGE_CHARS else message.text[:MAX_MESSAGE_CHARS] + "…"
            line = f"{message.ts} {who}: {text}"
            if sum(len(kept) + 1 for kept in lines) + len(line) > MAX_RESULT_CHARS:
                lines.append(f"(older messages left out for length; call again with before_ts={message.ts})")
                return "\n".join(reversed(lines))
            lines.append(line)
        if tail.older_than and not forgotten:
            lines.append(f"(older messages exist; call again with before_ts={tail.older_than})")
        return "\n".join(reversed(lines)) or "No messages."
