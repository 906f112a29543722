"""The tool loop of one answer, driven by the task's step journal so that a resumed task picks up where it was.

Each model call and each tool call is journaled before the next starts. On resume, the journal is replayed
into the conversation, and the loop continues from the first step that has no record: a completed tool call
is never run again, and a completed model call is never paid for twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.agent.client import ClaudeClient, OnRetry, OnText
from bot.agent.tools import ToolBox
from bot.core.faults import CrashPoints
from store.models import ThreadRef, Usage

Record = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class LoopResult:
    """The answer the loop arrived at."""

    text: str
    usage: Usage
    stop_reason: str | None
    first_call_input_tokens: int | None  # real input tokens of this run's first model call, for calibration


def replay(base: list[dict[str, Any]], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with the journaled steps applied: tool results of one round share one user message."""
    messages = [dict(message) for message in base]
    for step in steps:
        if step["kind"] == "model":
            messages.append({"role": "assistant", "content": step["content"]})
            continue
        block = {"type": "tool_result", "tool_use_id": step["tool_use_id"], "content": step["result"]}
        if step.get("is_error"):
            block["is_error"] = True
        last = messages[-1]
        if last["role"] == "user" and isinstance(last["content"], list) and last["content"][0]["type"] == "tool_result":
            last["content"] = [*last["content"], block]
        else:
            messages.append({"role": "user", "content": [block]})
    return messages


def pending_tool_calls(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """tool_use blocks of the last model step that have no journaled result yet."""
    model_steps = [index for index, step in enumerate(steps) if step["kind"] == "model"]
    if not model_steps or steps[model_steps[-1]]["stop_reason"] != "tool_use":
        return []
    last = model_steps[-1]
    answered = {step["tool_use_id"] for step in steps[last + 1 :]}
    return [b for b in steps[last]["content"] if b.get("type") == "tool_use" and b["id"] not in answered]


def needs_model_call(steps: list[dict[str, Any]]) -> bool:
    """True when the next step is a model call: at the start, after a round of tool results, or after a pause."""
    if not steps:
        return True
    if steps[-1]["kind"] == "tool":
        return not pending_tool_calls(steps)
    return bool(steps[-1]["stop_reason"] == "pause_turn")


def final_text(steps: list[dict[str, Any]]) -> str:
    """Text of the model steps after the last tool result: the answer itself, not the narration before tools."""
    tail: list[dict[str, Any]] = []
    for step in reversed(steps):
        if step["kind"] != "model":
            break
        tail.insert(0, step)
    return "".join(b.get("text", "") for step in tail for b in step["content"] if b.get("type") == "text").strip()


def model_calls(steps: list[dict[str, Any]]) -> int:
    """How many model calls the answer has made so far."""
    return sum(1 for step in steps if step["kind"] == "model")


def total_usage(steps: list[dict[str, Any]]) -> Usage:
    """Tokens of every journaled model call."""
    total = Usage()
    for step in steps:
        if step["kind"] == "model":
            total += Usage(**step["usage"])
    return total


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
        steps: list[dict[str, Any]],
        record: Record,
        thread: ThreadRef,
        on_text: OnText | None = None,
        on_retry: OnRetry | None = None,
    ) -> LoopResult:
        """Continue from `steps` (the journal so far) to an answer; `record` journals each new step, and
        `on_text` sees each model call's text as it streams in."""
        steps = [step for step in steps if step["kind"] in ("model", "tool")]
        first_call: int | None = None
        while True:
            if pending := pending_tool_calls(steps):
                call = pending[0]
                result = await self._tools.run(call["name"], call.get("input") or {}, thread)
                step = {"kind": "tool", "tool_use_id": call["id"], "name": call["name"], "result": result.text}
                if result.is_error:
                    step["is_error"] = True
                await record(step)
                steps.append(step)
                self._crash.reached("tool.done")
            elif needs_model_call(steps) and model_calls(steps) < self._max_model_calls:
                reply = await self._claude.step(
                    system, replay(base, steps), self._tools.definitions, on_text=on_text, on_retry=on_retry
                )
                await record(reply.to_record())
                steps.append(reply.to_record())
                if first_call is None and len(steps) == 1:
                    first_call = reply.usage.total_input_tokens
            else:
                return self._result(steps, first_call)

    def _result(self, steps: list[dict[str, Any]], first_call: int | None) -> LoopResult:
        stop_reason = next((s["stop_reason"] for s in reversed(steps) if s["kind"] == "model"), None)
        text = final_text(steps)
        if needs_model_call(steps) or pending_tool_calls(steps):
            text += f"\n\n_(I stopped after {self._max_model_calls} model calls before finishing.)_"
        elif stop_reason == "max_tokens":
            text += "\n\n_(My answer was cut short: it reached the length limit.)_"
        return LoopResult(text.strip() or "(I had nothing to add.)", total_usage(steps), stop_reason, first_call)
