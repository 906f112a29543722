"""The tool loop of one answer, driven by the task's step journal so that a resumed task picks up where it was.

Each model call and each tool call is journaled before the next starts. On resume, the journal is replayed
into the conversation, and the loop continues from the first step that has no record: a completed tool call
is never run again, and a completed model call is never paid for twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.agent.client import ClaudeClient, OnRetry, OnText
from bot.agent.steps import (
    LoopStep,
    Record,
    ToolStep,
    final_text,
    last_stop_reason,
    loop_steps,
    model_calls,
    needs_model_call,
    parse_steps,
    pending_tool_calls,
    replay,
    total_usage,
)
from bot.agent.tools import ToolBox
from bot.core.faults import CrashPoints
from store.models import ThreadRef, Usage


@dataclass(frozen=True)
class LoopResult:
    """The answer the loop arrived at."""

    text: str
    usage: Usage
    stop_reason: str | None
    first_call_input_tokens: int | None  # real input tokens of this run's first model call, for calibration


class AgentLoop:
    """Runs model and tool steps until the model is done, journaling each before the next."""

    def __init__(self, claude: ClaudeClient, tools: ToolBox, *, max_model_calls: int, crash: CrashPoints) -> None:
        self._claude = claude
        self._tools = tools
        self._max_model_calls = max_model_calls
        self._crash = crash

    @property
    def tool_definitions(self) -> list[dict[str, Any]]:
        """The tools sent with every call (they count toward the context)."""
        return self._tools.definitions

    async def count_tokens(self, system: list[dict[str, Any]], messages: list[dict[str, Any]]) -> int:
        """Exact input tokens of a first request with these system blocks and messages (tools included)."""
        return await self._claude.count_tokens(system, messages, self._tools.definitions)

    async def run(
        self,
        system: list[dict[str, Any]],
        base: list[dict[str, Any]],
        records: Sequence[Mapping[str, Any]],
        record: Record,
        thread: ThreadRef,
        on_text: OnText | None = None,
        on_retry: OnRetry | None = None,
    ) -> LoopResult:
        """Continue from `records` (the journal so far) to an answer; `record` journals each new step, and
        `on_text` sees each model call's text as it streams in."""
        steps = loop_steps(parse_steps(records))
        first_call: int | None = None
        while True:
            if pending := pending_tool_calls(steps):
                call = pending[0]
                result = await self._tools.run(call["name"], call.get("input") or {}, thread)
                step = ToolStep(call["id"], call["name"], result.text, result.is_error)
                await record(step.to_record())
                steps.append(step)
                self._crash.reached("tool.done")
            elif needs_model_call(steps) and model_calls(steps) < self._max_model_calls:
                reply = await self._claude.step(
                    system, replay(base, steps), self._tools.definitions, on_text=on_text, on_retry=on_retry
                )
                await record(reply.to_record())
                steps.append(reply)
                if first_call is None and len(steps) == 1:
                    first_call = reply.usage.total_input_tokens
            else:
                return self._result(steps, first_call)

    def _result(self, steps: Sequence[LoopStep], first_call: int | None) -> LoopResult:
        stop_reason = last_stop_reason(steps)
        text = final_text(steps)
        if needs_model_call(steps) or pending_tool_calls(steps):
            text += f"\n\n_(I stopped after {self._max_model_calls} model calls before finishing.)_"
        elif stop_reason == "max_tokens":
            text += "\n\n_(My answer was cut short: it reached the length limit.)_"
        return LoopResult(text.strip() or "(I had nothing to add.)", total_usage(steps), stop_reason, first_call)
