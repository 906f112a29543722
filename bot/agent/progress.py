"""Progress events of one answer, for the Slack side to show as steps (native streaming's task updates).

  model_call     a model call starts whose text restarts from "" in on_text (the first call, and the call after a
                 round of tools). A call that continues the same answer (after a max_tokens or pause_turn stop)
                 emits nothing: on_text goes on from the answer so far.
  tool_started   a tool call starts: a client tool as the loop runs it, a server tool (web_search...) as its
                 server_tool_use block starts in the stream, an MCP server's tool as its mcp_tool_use block does
  tool_finished  that call's result is in: journaled (client tools), or its *_tool_result block arrived (server
                 tools); `error` when the tool failed

Steps replayed from the journal emit nothing: they were shown when they ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

ProgressKind = Literal["model_call", "tool_started", "tool_finished"]

# What people read while a tool runs; a tool without a title here shows its name.
TOOL_TITLES = {
    "read_thread": "Reading the thread",
    "search_slack": "Searching Slack",
    "memory": "Using the channel's memory",
    "web_search": "Searching the web",
    "web_fetch": "Reading a web page",
    "code_execution": "Running code",
    # code_execution_20250825 calls its sub-tools by these names in server_tool_use blocks.
    "bash_code_execution": "Running code",
    "text_editor_code_execution": "Running code",
}


def tool_title(name: str) -> str:
    """The human title of a tool call: 'Searching the web' for web_search, the tool's name for others."""
    return TOOL_TITLES.get(name, name)


@dataclass(frozen=True)
class Progress:
    """One progress event of an answer; tool fields are empty for a model_call."""

    kind: ProgressKind
    tool_id: str = ""  # the tool_use / server_tool_use block's id: a tool_started and its tool_finished share it
    name: str = ""  # the tool's name as the model calls it
    title: str = ""  # what people read: tool_title(name)
    error: bool = False  # tool_finished only: the tool failed

    @classmethod
    def model_call(cls) -> Progress:
        """A model call starts; its text restarts from "" in on_text."""
        return cls("model_call")

    @classmethod
    def tool_started(cls, tool_id: str, name: str) -> Progress:
        """A tool call starts."""
        return cls("tool_started", tool_id, name, tool_title(name))

    @classmethod
    def mcp_tool_started(cls, tool_id: str, server: str, tool: str) -> Progress:
        """A tool of a remote MCP server starts (the API's connector calls it): shown as "Using SERVER.TOOL"."""
        name = f"{server}.{tool}"
        return cls("tool_started", tool_id, name, f"Using {name}")

    @classmethod
    def tool_finished(cls, tool_id: str, name: str, *, error: bool) -> Progress:
        """A tool call's result is in."""
        return cls("tool_finished", tool_id, name, tool_title(name), error)


# Called with each progress event as it happens; the loop awaits it, so it should be quick.
OnProgress = Callable[[Progress], Awaitable[None]]
