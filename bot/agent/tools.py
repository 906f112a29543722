"""Tools the agent can call: client tools run here (`read_thread` always), Anthropic's server tools on its side."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.agent.mcp import McpServers
from bot.agent.messages import since_last_reset
from bot.agent.setup import AgentSetup
from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from store.models import Task, ThreadRef
from store.tasks import ThreadLease

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


@dataclass(frozen=True)
class ToolCall:
    """One client tool call of a task: the model's tool_use block, and the task and setup it was made in. `lease`:
    the run's hold on its thread, for a tool whose writes must stop once the run has lost it (None: unfenced)."""

    tool_use_id: str
    name: str
    input: dict[str, Any]
    task: Task
    setup: AgentSetup
    lease: ThreadLease | None = None


class ClientTool(Protocol):
    """A tool that runs here: its definition for the API, and how to run one call of it."""

    @property
    def definition(self) -> dict[str, Any]:
        """The tool as the API's `tools` list takes it."""
        ...

    async def run(self, call: ToolCall) -> ToolResult:
        """Run one call; problems become an error result the model can read, not an exception."""
        ...


@dataclass(frozen=True)
class Offer:
    """The tools a deployment offers: those a channel may choose (by name), and those it has unless it chooses."""

    client: Mapping[str, ClientTool] = field(default_factory=dict)
    server: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    defaults: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Every tool a channel may allow, in the order they are sent."""
        return [*self.client, *self.server]


class ToolBox:
    """The tool definitions sent with a task's model calls, and the runner of the client-side ones.

    `read_thread` is always there (it reads the task's own thread); the others are those the task's setup allows
    among what the deployment offers.
    """

    _mcp: McpServers | None = None

    def __init__(self, slack: SlackGateway, offer: Offer | None = None, mcp: McpServers | None = None) -> None:
        self._read_thread = ReadThread(slack)
        self.offer = offer or Offer()
        self._mcp = mcp  # its toolsets are among the offer's server tools ("mcp:NAME")

    def definitions(self, setup: AgentSetup) -> list[dict[str, Any]]:
        """The `tools` of a request made with this setup (they count toward the context)."""
        allowed = [tool.definition for name, tool in self.offer.client.items() if setup.allows(name)]
        server = [definition for name, definition in self.offer.server.items() if setup.allows(name)]
        return [READ_THREAD, *allowed, *server]

    def request_options(self, setup: AgentSetup) -> dict[str, Any]:
        """What else a request made with this setup carries besides its tools: the MCP servers it may use."""
        return self._mcp.request_options(setup) if self._mcp is not None else {}

    async def run(self, call: ToolCall) -> ToolResult:
        """Run one client tool call; problems become an error result the model can read, not an exception."""
        if call.name == READ_THREAD["name"]:
            return await self._read_thread.run(call)
        tool = self.offer.client.get(call.name)
        if tool is None or not call.setup.allows(call.name):
            return ToolResult(f"unknown tool {call.name!r}", is_error=True)
        return await tool.run(call)


class ReadThread:
    """`read_thread`: the task's own thread, newest messages first, paged by ts."""

    definition = READ_THREAD

    def __init__(self, slack: SlackGateway) -> None:
        self._slack = slack

    async def run(self, call: ToolCall) -> ToolResult:
        """Read a page of the thread."""
        try:
            return ToolResult(await self._read_thread(call.task.thread, call.input))
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
