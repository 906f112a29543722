"""`memory`: Anthropic's memory tool (memory_20250818), run here against the channel's memory in Redis.

The API defines the tool and tells the model how to use it (it adds its own memory instructions to the system
prompt when the tool is present); the bot runs each call. A task's setup names the scope, "T:C": the agents of a
channel share one memory, and a task without a scope (a DM, memory turned off) has none, so nothing a channel's
agents learned reaches another channel or a DM.

A write is exactly once: the store records the call's tool_use_id with its result in the script that applies it,
and a call run again (the task resumed after a crash between the write and the journal's record) gets that result
back without changing anything. The crash point "memory.written" sits exactly there, for the tests.
"""

from __future__ import annotations

import re
from typing import Any

from bot.agent import memory_commands
from bot.agent.memory_commands import WRITE_COMMANDS, CommandError
from bot.agent.memory_paths import BadPath
from bot.agent.tools import MAX_RESULT_CHARS, ToolCall, ToolResult
from bot.core.faults import CrashPoints
from store.memory import MAX_ATTEMPTS, MemoryBusy, MemoryChange, MemoryFull, MemoryStore

NAME = "memory"
DEFINITION: dict[str, Any] = {"type": "memory_20250818", "name": NAME}
# A scope is "T:C": Slack's ids, which keeps it safe inside a key name.
_SCOPE = re.compile(r"[A-Z0-9]{1,32}:[A-Z0-9]{1,32}")
# Inputs are bounded before anything is read: one memory is at most MEMORY_MAX_BYTES, so no input needs more.
MAX_INPUT_CHARS = 100_000
COMMANDS = frozenset({"view", *WRITE_COMMANDS})


class MemoryTool:
    """The client side of the memory tool, one channel's memory per call (the call's setup scope)."""

    definition = DEFINITION

    def __init__(self, store: MemoryStore, crash: CrashPoints) -> None:
        self._store = store
        self._crash = crash

    async def run(self, call: ToolCall) -> ToolResult:
        """Run one memory command; a problem with the command is an error result the model reads (Redis errors
        propagate: the task is retried, and a write already applied is not applied again)."""
        scope = call.setup.scope
        if not scope or not _SCOPE.fullmatch(scope):
            return ToolResult(
                "There is no memory in this conversation (memory is kept for channels only).", is_error=True
            )
        command = call.input.get("command")
        if command not in COMMANDS:
            known = "view, create, str_replace, insert, delete or rename"
            return ToolResult(f"Unknown command {str(command)[:40]!r}: use {known}.", is_error=True)
        if sum(len(value) for value in call.input.values() if isinstance(value, str)) > MAX_INPUT_CHARS:
            return ToolResult(f"The input is too long: at most {MAX_INPUT_CHARS:,} characters in all.", True)
        try:
            if command == "view":
                text = memory_commands.view(await self._store.snapshot(scope, touch=True), call.input)
            else:
                text = await self._write(scope, call)
        except (CommandError, BadPath, MemoryFull) as exc:
            return ToolResult(_bounded(str(exc)), is_error=True)
        except MemoryBusy as exc:
            return ToolResult(f"{exc}; try again.", is_error=True)
        return ToolResult(_bounded(text))

    async def _write(self, scope: str, call: ToolCall) -> str:
        """Apply a write command once, whatever happens around it (see the module's docstring)."""
        earlier = await self._store.applied(scope, call.tool_use_id)
        if earlier is not None:  # applied before a crash; what is there now may already include later changes
            return earlier
        for _ in range(MAX_ATTEMPTS):
            before = await self._store.snapshot(scope)
            planned = memory_commands.change(before, call.input)
            change = MemoryChange(planned.writes, _bounded(planned.result))  # the record holds what the model reads
            applied = await self._store.commit(scope, before, change, call.tool_use_id)
            if applied is None:
                continue  # another agent of the channel changed the memory meanwhile: recompute on its result
            self._crash.reached("memory.written")
            return applied.result
        raise MemoryBusy("the memory kept changing while this change was being made")


def _bounded(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + "\n(cut for length: view a smaller part with view_range [first, last])"
