"""The tool loop of one answer, driven by the task's step journal so that a resumed task picks up where it was.

Each model call and each tool call is journaled before the next starts. On resume, the journal is replayed
into the conversation, and the loop continues from the first step that has no record: a completed tool call
is never run again, and a completed model call is never paid for twice.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.agent import mcp
from bot.agent.client import ClaudeClient, OnRetry, OnText
from bot.agent.continuation import preview
from bot.agent.pricing import cost_usd
from bot.agent.progress import OnProgress, Progress
from bot.agent.setup import AgentSetup
from bot.agent.steps import (
    LoopStep,
    ModelStep,
    Record,
    ToolStep,
    answer_output_tokens,
    answer_so_far,
    continuation_due,
    counted_model_calls,
    final_text,
    holds_answer,
    last_stop_reason,
    loop_steps,
    needs_model_call,
    parse_steps,
    pending_tool_calls,
    replay,
    total_usage,
)
from bot.agent.tools import ToolBox, ToolCall
from bot.core.errors import ModelError, ModelRefused
from bot.core.faults import CrashPoints
from store.models import Task, Usage
from store.tasks import ThreadLease

# Told the real usage of the call it was asked about, or None when the call failed unbilled.
Settle = Callable[[Usage | None], Awaitable[None]]


class CallGuard(Protocol):
    """Asked before each model call of a run whether it may be made (bot/tasks/budgets.py: the daily budgets)."""

    async def before_call(self, model: str, input_tokens: int, max_tokens: int) -> Settle:
        """Raise OverBudget if the call's worst case (these input tokens, then max_tokens out) does not fit; else
        hold it, and return what settles the hold once the call's real usage is known."""
        ...


# An image or a PDF page costs about this many tokens whatever the length of its base64 data.
MEDIA_TOKENS = 1_600


def estimated_input_tokens(system: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]], tools: Any) -> int:
    """A rough, generous count of a request's input tokens: four characters of its JSON a token, a flat
    MEDIA_TOKENS for each image or document (their base64 data says little of what they cost)."""
    media = 0

    def strip(value: Any) -> Any:
        nonlocal media
        if isinstance(value, dict):
            if value.get("type") in ("image", "document") and isinstance(value.get("source"), dict):
                media += 1
                return None
            return {key: strip(item) for key, item in value.items()}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    text = json.dumps(strip([system, messages, tools]), ensure_ascii=False)
    return math.ceil(len(text) / 4) + media * MEDIA_TOKENS


@dataclass(frozen=True)
class LoopResult:
    """The answer the loop arrived at."""

    text: str
    usage: Usage
    stop_reason: str | None
    first_call_input_tokens: int | None  # real input tokens of this run's first model call, for calibration


class AgentLoop:
    """Runs model and tool steps until the model is done, journaling each before the next.

    An answer cut at max_tokens is continued by further model calls until it ends or its output reaches
    `max_answer_tokens`. Those continuations do not count toward `max_model_calls`, which bounds tool use: a long
    answer after nine tool rounds is as whole as one after none.
    """

    def __init__(
        self,
        claude: ClaudeClient,
        tools: ToolBox,
        *,
        max_model_calls: int,
        crash: CrashPoints,
        max_answer_tokens: int | None = None,
    ) -> None:
        self._claude = claude
        self._tools = tools
        self._max_model_calls = max_model_calls
        self._crash = crash
        # Without a cap of its own, an answer is not continued past one call's worth of output.
        self._max_answer_tokens = max_answer_tokens if max_answer_tokens is not None else claude.max_tokens

    def tool_definitions(self, setup: AgentSetup) -> list[dict[str, Any]]:
        """The tools sent with every call of a task with this setup (they count toward the context)."""
        return self._tools.definitions(setup)

    def model(self, setup: AgentSetup) -> str:
        """The model a task with this setup asks for."""
        return setup.model or self._claude.model

    async def count_tokens(
        self, system: list[dict[str, Any]], messages: list[dict[str, Any]], setup: AgentSetup
    ) -> int:
        """Exact input tokens of a first request with these system blocks and messages (tools included)."""
        return await self._claude.count_tokens(
            system,
            messages,
            self._tools.definitions(setup),
            model=self.model(setup),
            extra=self._tools.request_options(setup),
            thinking=setup.thinking,
        )

    @property
    def thinking(self) -> str:
        """The thinking a task starting now is set up with (the answer client's)."""
        return self._claude.thinking

    def holds_answer(self, records: Sequence[Mapping[str, Any]]) -> bool:
        """Whether a journal holds a finished answer, with this loop's cap on continuing a cut one."""
        return holds_answer(records, self._max_answer_tokens)

    async def run(
        self,
        system: list[dict[str, Any]],
        base: list[dict[str, Any]],
        records: Sequence[Mapping[str, Any]],
        record: Record,
        task: Task,
        on_text: OnText | None = None,
        on_retry: OnRetry | None = None,
        on_progress: OnProgress | None = None,
        guard: CallGuard | None = None,
        setup: AgentSetup | None = None,
        lease: ThreadLease | None = None,
    ) -> LoopResult:
        """Continue from `records` (the journal so far) to an answer; `record` journals each new step.

        `on_text` sees the text of the answer being written so far as it streams in: it restarts from "" at each
        model_call progress event (the first call, the call after tools) and goes on from the answer so far in a
        call that continues it. `on_progress` hears of model calls and tool calls as they start and finish; steps
        replayed from the journal emit nothing. Cancelling the task running this closes the model's stream at
        once and makes no further call. `guard` is asked before each model call; its OverBudget ends the run there,
        after the steps already made (each journaled). `setup` is the task's channel setup: its model and tools.
        `lease` is the run's, handed to client tools that fence their writes with it.
        """
        setup = setup or AgentSetup()
        steps = loop_steps(parse_steps(records))
        first_call: int | None = None
        while True:
            if pending := pending_tool_calls(steps):
                call = pending[0]
                tool_call = ToolCall(call["id"], call["name"], call.get("input") or {}, task, setup, lease)
                steps.append(await self._run_tool(tool_call, record, on_progress))
                self._crash.reached("tool.done")
            elif self._model_call_due(steps):
                reply = await self._call_model(system, base, steps, setup, on_text, on_retry, on_progress, guard)
                await record(reply.to_record())
                steps.append(reply)
                if first_call is None and len(steps) == 1:
                    first_call = reply.usage.total_input_tokens
                if continuation_due(steps, self._max_answer_tokens):
                    self._crash.reached("answer.cut")
            else:
                return self._result(steps, first_call)

    def _model_call_due(self, steps: Sequence[LoopStep]) -> bool:
        if continuation_due(steps, self._max_answer_tokens):
            return True
        return needs_model_call(steps) and counted_model_calls(steps) < self._max_model_calls

    async def _run_tool(self, call: ToolCall, record: Record, on_progress: OnProgress | None) -> ToolStep:
        """Run one client tool call and journal its result, telling `on_progress` around it."""
        if on_progress is not None:
            await on_progress(Progress.tool_started(call.tool_use_id, call.name))
        result = await self._tools.run(call)
        step = ToolStep(call.tool_use_id, call.name, result.text, result.is_error)
        await record(step.to_record())
        if on_progress is not None:
            await on_progress(Progress.tool_finished(step.tool_use_id, step.name, error=step.is_error))
        return step

    async def _call_model(
        self,
        system: list[dict[str, Any]],
        base: list[dict[str, Any]],
        steps: Sequence[LoopStep],
        setup: AgentSetup,
        on_text: OnText | None,
        on_retry: OnRetry | None,
        on_progress: OnProgress | None,
        guard: CallGuard | None = None,
    ) -> ModelStep:
        """One model call: a new piece of text, or the continuation of the answer so far."""
        previous = steps[-1] if steps else None
        stopped = previous.stop_reason if isinstance(previous, ModelStep) else None
        max_tokens: int | None = None
        if stopped in ("max_tokens", "pause_turn"):  # the same answer goes on
            if on_text is not None:
                on_text = _going_on(on_text, answer_so_far(steps), after_cut=stopped == "max_tokens")
            if stopped == "max_tokens":  # the last piece ends exactly at the cap
                max_tokens = min(self._claude.max_tokens, self._max_answer_tokens - answer_output_tokens(steps))
        elif on_progress is not None:
            await on_progress(Progress.model_call())
        messages = replay(base, steps)
        # A server that did not answer earlier in the task is not asked again (each try may wait for its timeout).
        setup = mcp.without_tools(
            setup, (name for step in steps if isinstance(step, ModelStep) for name in step.mcp_dropped)
        )
        tools = self._tools.definitions(setup)
        model = self.model(setup)
        settle: Settle | None = None
        estimate: int | None = None
        if guard is not None:
            estimate = estimated_input_tokens(system, messages, tools)
            settle = await guard.before_call(model, estimate, max_tokens or self._claude.max_tokens)
        try:
            step = await self._claude.step(
                system,
                messages,
                tools,
                model=model,
                extra=mcp.with_beta_for(messages, self._tools.request_options(setup)),
                thinking=setup.thinking,
                max_tokens=max_tokens,
                on_text=on_text,
                on_retry=on_retry,
                on_progress=on_progress,
            )
        except ModelRefused:
            raise  # billed, though its usage is not at hand: the hold stays as the cost
        except ModelError:
            if settle is not None:
                await settle(None)  # failed for good: nothing was billed
            raise
        except asyncio.CancelledError:
            # Stopped mid-call (Stop, a reset, a lost lease, shutdown): the input was billed, and what was streamed
            # of the output is not at hand; the hold is settled to the input, not left at max_tokens of output.
            if settle is not None and estimate is not None:
                await asyncio.shield(settle(input_only(model, estimate)))
            raise
        if settle is not None:
            await settle(step.usage)
        return step

    def _result(self, steps: Sequence[LoopStep], first_call: int | None) -> LoopResult:
        stop_reason = last_stop_reason(steps)
        text = final_text(steps)
        if needs_model_call(steps) or pending_tool_calls(steps):
            text += f"\n\n_(I stopped after {self._max_model_calls} model calls before finishing.)_"
        elif stop_reason == "max_tokens":
            text += "\n\n_(My answer was cut short: it reached the length limit.)_"
        models = [step for step in steps if isinstance(step, ModelStep)]
        dropped = [name for step in models for name in step.mcp_dropped]
        for note in mcp.notes((step.content for step in models), dropped):
            text += "\n\n" + note
        return LoopResult(text.strip() or "(I had nothing to add.)", total_usage(steps), stop_reason, first_call)


def _going_on(on_text: OnText, before: str, *, after_cut: bool) -> OnText:
    """`on_text` for a call that continues the answer `before`: it sees the whole answer so far."""

    async def show(text: str) -> None:
        await on_text(preview(before, text) if after_cut else before + text)

    return show


def input_only(model: str, input_tokens: int) -> Usage:
    """The usage of a call stopped before its answer was at hand: its input, billed at the input price."""
    cost = cost_usd(model, input_tokens=input_tokens, output_tokens=0, cache_write=0, cache_read=0)
    return Usage(input_tokens=input_tokens, model_calls=1, cost_microusd=round(cost * 1_000_000))
