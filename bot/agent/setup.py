"""How one task's agent works: its channel's instructions, its model and its tools, fixed for the task's life.

A task reads its channel's configuration once, before its first model call, and journals it with that call (the
"setup" field of its first model step; a step of kind "setup" in journals of the first release that had them): a
resumed task that made a call uses the journaled one, so a configuration changed meanwhile applies from the next
task on, never in the middle of one (a task that made no call yet has nothing to keep, and reads it again). The
system prompt is built from it byte for byte the same way every time, so two tasks of a channel whose
configuration did not change send the same prefix, and the prompt cache keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from bot.agent.thinking import model_version, parse_thinking
from store.errors import CorruptRecord

INSTRUCTIONS_HEADING = "Instructions from this channel's admins (they apply to every thread of the channel):"
# The API tells the model how to use its memory tool; it cannot know that this memory is a channel's, shared.
MEMORY_NOTE = (
    "Your memory directory (/memories) belongs to this Slack channel: every thread's agent in the channel reads and "
    "writes it, and the channel's members can see it. Keep there what helps the channel's future conversations "
    "(names, decisions, how the team works), not private details of one person."
)


@dataclass(frozen=True)
class AgentSetup:
    """The channel-level choices a task runs with. `model` "" is the deployment's model; `tools` are the names of
    the tools the task may use (client tools, server tools, and "mcp:NAME" for an MCP server)."""

    kind: ClassVar[str] = "setup"
    instructions: str = ""
    model: str = ""
    tools: tuple[str, ...] = ()
    version: int = 0
    scope: str = ""  # whose memory the task's agent shares ("" = none: a DM, or memory off)
    # The thinking its calls are made with (bot/agent/thinking.py thinking_label), fixed for the task's life like the
    # model: a tool loop is one assistant turn, which the API wants thought through one way. None: the deployment's
    # (a setup journaled before this was recorded).
    thinking: str | None = None

    def system_prompt(self, base: str) -> str:
        """The deployment's system prompt, then the channel's instructions when it has any, then what the memory
        is when the task has one (the same bytes for every task of the channel: the prompt cache keeps working)."""
        prompt = f"{base}\n\n{INSTRUCTIONS_HEADING}\n{self.instructions}" if self.instructions else base
        return f"{prompt}\n\n{MEMORY_NOTE}" if self.scope else prompt

    def allows(self, tool: str) -> bool:
        """Whether the task may use `tool`."""
        return tool in self.tools

    def to_record(self) -> dict[str, Any]:
        """The journal record of this setup."""
        return {
            "kind": self.kind,
            "instructions": self.instructions,
            "model": self.model,
            "tools": list(self.tools),
            "version": self.version,
            "scope": self.scope,
            **({"thinking": self.thinking} if self.thinking is not None else {}),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AgentSetup:
        """The setup a journal record holds; CorruptRecord when it is malformed."""
        instructions, model, tools = record.get("instructions"), record.get("model"), record.get("tools")
        version, scope, thinking = record.get("version"), record.get("scope", ""), record.get("thinking")
        if not isinstance(instructions, str) or not isinstance(model, str) or not isinstance(scope, str):
            raise CorruptRecord("journal step 'setup': a text field is not str")
        if not isinstance(tools, list) or not all(isinstance(name, str) for name in tools):
            raise CorruptRecord("journal step 'setup': field 'tools' is not a list of names")
        if not isinstance(version, int) or isinstance(version, bool):
            raise CorruptRecord("journal step 'setup': field 'version' is not int")
        if thinking is not None:
            try:
                parse_thinking(thinking)
            except (TypeError, ValueError):
                raise CorruptRecord("journal step 'setup': field 'thinking' is not a known thinking") from None
        return cls(instructions, model, tuple(tools), version, scope, thinking)


def with_setup(record: dict[str, Any], setup: AgentSetup) -> dict[str, Any]:
    """A step's record carrying the task's setup (its first model call's: one write for both)."""
    return {**record, AgentSetup.kind: setup.to_record()}


def journaled_setup(records: Sequence[Mapping[str, Any]]) -> AgentSetup | None:
    """The setup a task journaled, if it journaled one: with its first model call, or as a step of its own (as the
    first release to journal setups did); a task begun by an older release, or that made no call yet, has none."""
    for record in records:
        if not isinstance(record, Mapping):
            continue
        if record.get("kind") == AgentSetup.kind:
            return AgentSetup.from_record(record)
        carried = record.get(AgentSetup.kind)
        if carried is not None:
            if not isinstance(carried, Mapping):
                raise CorruptRecord("journal step: field 'setup' is not an object")
            return AgentSetup.from_record(carried)
    return None


MEMORY_TOOL = "memory"


def supports_memory(model: str) -> bool:
    """Whether the API takes the memory tool for `model`: Claude 4 models and later (an id it cannot date, such as a
    proxy's alias, is left to the API)."""
    version = model_version(model)
    return not model.startswith("claude-3") and (version is None or version >= (4, 0))


def for_model(setup: AgentSetup, model: str) -> AgentSetup:
    """The setup as `model` can run it: without the memory tool (and the memory note) on a model that predates it,
    whose requests the API would refuse."""
    if supports_memory(model) or MEMORY_TOOL not in setup.tools:
        return setup
    return replace(setup, tools=tuple(tool for tool in setup.tools if tool != MEMORY_TOOL), scope="")
