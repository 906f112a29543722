"""The journal-driven tool loop, with a scripted model and tools at the boundary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.agent.loop import AgentLoop
from bot.agent.setup import AgentSetup
from bot.agent.steps import ModelStep, loop_steps, needs_model_call, parse_steps, pending_tool_calls, replay
from bot.agent.tools import ToolBox, ToolCall, ToolResult
from bot.core.faults import CrashPoints
from store.models import ThreadRef, Usage

THREAD = ThreadRef("T1", "C1", "1.000001")
BASE = [{"role": "user", "content": "alice: what is in the thread?"}]


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": "read_thread", "input": {"limit": 3}}


class ScriptedClaude:
    """Returns prepared steps in order and records the messages it was sent."""

    max_tokens = 100
    model = "claude-scripted"

    def __init__(self, *steps: ModelStep) -> None:
        self.steps = list(steps)
        self.sent: list[list[dict[str, Any]]] = []
        self.max_tokens_sent: list[int | None] = []

    async def step(
        self,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] = (),
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        on_text: Any = None,
        on_retry: Any = None,
        on_progress: Any = None,
        extra: Any = None,
        thinking: str | None = None,
    ) -> ModelStep:
        self.sent.append([dict(m) for m in messages])
        self.max_tokens_sent.append(max_tokens)
        return self.steps.pop(0)


class CountingTools(ToolBox):
    """A ToolBox whose tool answers from memory and counts its calls."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.calls: list[str] = []

    def definitions(self, setup: AgentSetup) -> list[dict[str, Any]]:
        return self.listed

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call.name)
        return ToolResult(f"result {len(self.calls)}")


def step(content: list[dict[str, Any]], stop_reason: str) -> ModelStep:
    # A call that stops at max_tokens wrote all the tokens it was allowed (ScriptedClaude.max_tokens).
    output = ScriptedClaude.max_tokens if stop_reason == "max_tokens" else 10
    return ModelStep(content, stop_reason, Usage(input_tokens=100, output_tokens=output, model_calls=1))


async def run_loop(claude: ScriptedClaude, tools: CountingTools, steps: list[dict[str, Any]], max_calls: int = 5):  # type: ignore[no-untyped-def]
    recorded: list[dict[str, Any]] = []

    async def record(entry: dict[str, Any]) -> None:
        recorded.append(entry)

    loop = AgentLoop(claude, tools, max_model_calls=max_calls, crash=CrashPoints())  # type: ignore[arg-type]
    return await loop.run([{"type": "text", "text": "sys"}], BASE, steps, record, THREAD), recorded


async def test_tool_round_then_answer() -> None:
    """A tool_use is run once, its result goes back in one user message, and the final text is the answer."""
    claude = ScriptedClaude(
        step([text("Looking."), tool_use("t1"), tool_use("t2")], "tool_use"), step([text("Done.")], "end_turn")
    )
    tools = CountingTools()
    result, recorded = await run_loop(claude, tools, [])
    assert result.text == "Done."
    assert tools.calls == ["read_thread", "read_thread"]
    assert [r["kind"] for r in recorded] == ["model", "tool", "tool", "model"]
    second_request = claude.sent[1]
    assert [block["tool_use_id"] for block in second_request[-1]["content"]] == ["t1", "t2"]
    assert result.usage.model_calls == 2 and result.usage.input_tokens == 200


async def test_resume_after_a_tool_step_skips_it() -> None:
    """Given a journal with one of two tool calls done, only the other runs, then the model is asked."""
    journal = [
        {
            "kind": "model",
            "content": [tool_use("t1"), tool_use("t2")],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 100, "output_tokens": 10},
        },
        {"kind": "tool", "tool_use_id": "t1", "name": "read_thread", "result": "done before the crash"},
    ]
    claude = ScriptedClaude(step([text("Answer.")], "end_turn"))
    tools = CountingTools()
    result, recorded = await run_loop(claude, tools, journal)
    assert tools.calls == ["read_thread"]
    assert recorded[0]["tool_use_id"] == "t2"
    assert result.text == "Answer."


async def test_pause_turn_is_continued() -> None:
    """A paused server-tool turn is sent back as is, and the answer joins both parts."""
    claude = ScriptedClaude(step([text("Part one. ")], "pause_turn"), step([text("Part two.")], "end_turn"))
    result, _ = await run_loop(claude, CountingTools(), [])
    assert result.text == "Part one. Part two."
    assert claude.sent[1][-1] == {"role": "assistant", "content": [text("Part one. ")]}


async def test_max_tokens_and_step_limit_are_said_plainly() -> None:
    """A cut answer says it was cut; a loop that hits the call limit says it stopped early."""
    cut, _ = await run_loop(ScriptedClaude(step([text("Long")], "max_tokens")), CountingTools(), [])
    assert cut.text.startswith("Long") and "cut short" in cut.text
    looping = ScriptedClaude(*(step([tool_use(f"t{n}")], "tool_use") for n in range(3)))
    stopped, _ = await run_loop(looping, CountingTools(), [], max_calls=2)
    assert "stopped after 2 model calls" in stopped.text


def test_a_finished_journal_needs_nothing_more() -> None:
    """An end_turn step leaves no model call and no tool call to make."""
    done = loop_steps(parse_steps([{"kind": "model", "content": [text("x")], "stop_reason": "end_turn", "usage": {}}]))
    assert not needs_model_call(done) and not pending_tool_calls(done)
    assert needs_model_call([])
    assert replay(BASE, done)[-1] == {"role": "assistant", "content": [text("x")]}
