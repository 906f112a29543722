"""Adaptive thinking in the answer client and the tool loop, against the fake Messages API (which checks signatures)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from bot.agent.client import ClaudeClient
from bot.agent.loop import AgentLoop, LoopResult
from bot.agent.setup import AgentSetup
from bot.agent.steps import ModelStep, ToolStep, replay
from bot.agent.thinking import Thinking
from bot.agent.tools import ToolBox, ToolCall, ToolResult
from bot.core.faults import CrashPoints
from store.models import ThreadRef, Usage
from tests.fakes import FakeAnthropic

MODEL = "claude-sonnet-4-6"  # the fake returns its thinking text (summarized), which must still never be shown
THREAD = ThreadRef("T1", "C1", "1.000001")
SYSTEM = [{"type": "text", "text": "sys"}]
BASE = [{"role": "user", "content": "alice: what is in the thread?"}]
THOUGHT = "PRIVATE-THOUGHT: the thread is short, read it first."


class OneTool(ToolBox):
    """A ToolBox with one tool that answers from memory."""

    def __init__(self) -> None:
        self.listed = [{"name": "read_thread", "description": "reads", "input_schema": {"type": "object"}}]

    def definitions(self, setup: AgentSetup) -> list[dict[str, Any]]:
        return self.listed

    async def run(self, call: ToolCall) -> ToolResult:
        return ToolResult("alice said hello")


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def sdk(claude: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(api_key="test", base_url=claude.base_url, max_retries=0) as made:
        yield made


def thinking_client(sdk: anthropic.AsyncAnthropic, max_tokens: int = 1_000) -> ClaudeClient:
    return ClaudeClient(sdk, model=MODEL, max_tokens=max_tokens, thinking=Thinking("medium"))


async def run(loop: AgentLoop, records: list[dict[str, Any]], on_text: Any = None) -> LoopResult:
    """Run the loop from `records`, journaling into the same list as JSON (what Redis keeps)."""

    async def record(entry: dict[str, Any]) -> None:
        records.append(json.loads(json.dumps(entry)))

    return await loop.run(SYSTEM, BASE, list(records), record, THREAD, on_text=on_text)


async def test_answer_calls_ask_for_adaptive_thinking_and_effort(
    sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic
) -> None:
    """A thinking client's calls (and token counts) carry thinking adaptive and the effort; another's carry neither."""
    await thinking_client(sdk).step("sys", BASE)
    await thinking_client(sdk).count_tokens("sys", BASE)
    await ClaudeClient(sdk, model=MODEL, max_tokens=1_000).step("sys", BASE)
    thought, counted, plain = claude.requests[0], claude.count_requests[0], claude.requests[1]
    for request in (thought, counted):
        assert request["thinking"] == {"type": "adaptive"} and request["output_config"] == {"effort": "medium"}
    assert "thinking" not in plain and "output_config" not in plain


async def test_streamed_thinking_never_reaches_on_text_and_is_journaled_whole(
    sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic
) -> None:
    """Streamed, on_text sees the answer's text only; the step keeps the thinking block with its signature."""
    claude.reply_text("The thread is short.", thinking=THOUGHT)
    shown: list[str] = []

    async def on_text(text: str) -> None:
        shown.append(text)

    step = await thinking_client(sdk).step("sys", BASE, on_text=on_text)
    assert shown[-1] == "The thread is short." and not any("PRIVATE" in text for text in shown)
    assert step.content[0]["type"] == "thinking" and step.content[0]["thinking"] == THOUGHT
    assert step.content[0]["signature"] and step.text() == "The thread is short."


async def test_a_tool_loop_sends_the_thinking_back_intact(sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic) -> None:
    """The call after a tool result carries the thinking block of the call that asked for the tool, exactly as it
    came (the fake refuses it otherwise), and the answer holds no thinking."""
    claude.reply_tool_use("read_thread", {}, tool_id="toolu_1", thinking=THOUGHT)
    claude.reply_text("Alice said hello.", thinking="PRIVATE-THOUGHT: now answer.")
    records: list[dict[str, Any]] = []
    shown: list[str] = []

    async def on_text(text: str) -> None:
        shown.append(text)

    result = await run(
        AgentLoop(thinking_client(sdk), OneTool(), max_model_calls=5, crash=CrashPoints()), records, on_text
    )
    assert result.text == "Alice said hello." and not any("PRIVATE" in text for text in shown)
    assert len(claude.requests) == 2
    assistant_turn = claude.requests[1]["messages"][-2]["content"]
    assert assistant_turn[0] == records[0]["content"][0]
    assert assistant_turn[0]["type"] == "thinking" and assistant_turn[0]["signature"]


async def test_a_resumed_tool_loop_sends_the_journaled_thinking_back(
    sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic
) -> None:
    """A loop resumed from a journal (a model step with thinking and a tool call, then its result, as JSON) makes its
    next call with that thinking block whole, and the fake accepts it."""
    claude.reply_tool_use("read_thread", {}, tool_id="toolu_1", thinking=THOUGHT)
    first = await thinking_client(sdk).step("sys", BASE, OneTool().listed)
    records = [json.loads(json.dumps(first.to_record())), ToolStep("toolu_1", "read_thread", "hello").to_record()]
    claude.reply_text("Alice said hello.")
    loop = AgentLoop(thinking_client(sdk), OneTool(), max_model_calls=5, crash=CrashPoints())
    result = await run(loop, records)
    assert result.text == "Alice said hello."
    assert claude.requests[-1]["messages"][-2]["content"][0] == first.content[0]


async def test_an_answer_cut_while_thinking_is_continued(sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic) -> None:
    """max_tokens reached inside the thinking leaves an unsigned block, which the continuation does not send back
    (the fake, like the API, refuses an unsigned thinking block): the answer still comes."""
    claude.reply_text("never reached", thinking="a long line of thought " * 40)
    claude.reply_text("The thread is short.", thinking="Go on.")
    records: list[dict[str, Any]] = []
    loop = AgentLoop(thinking_client(sdk, 50), OneTool(), max_model_calls=5, crash=CrashPoints(), max_answer_tokens=200)
    result = await run(loop, records)
    assert records[0]["content"][0]["signature"] == "" and records[0]["stop_reason"] == "max_tokens"
    assert result.text == "The thread is short."
    assert all(message["role"] == "user" for message in claude.requests[1]["messages"])


def test_replay_keeps_signed_thinking_and_drops_the_unsigned() -> None:
    """Signed thinking and redacted_thinking go back as they were; a cut, unsigned thinking block does not."""
    signed = {"type": "thinking", "thinking": "plan", "signature": "c2ln"}
    redacted = {"type": "redacted_thinking", "data": "b3BhcXVl"}
    call = {"type": "tool_use", "id": "toolu_1", "name": "read_thread", "input": {}}
    usage = Usage(output_tokens=10, model_calls=1)
    steps = [
        ModelStep([signed, redacted, call], "tool_use", usage),
        ToolStep("toolu_1", "read_thread", "hello"),
        ModelStep([{"type": "thinking", "thinking": "half a th", "signature": ""}], "max_tokens", usage),
    ]
    messages = replay(BASE, steps)
    assert messages[1] == {"role": "assistant", "content": [signed, redacted, call]}
    assert [message["role"] for message in messages] == ["user", "assistant", "user", "user"]


async def test_a_continued_answer_that_thinks_keeps_each_piece_as_written(
    sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic
) -> None:
    """Pieces of an answer cut at max_tokens that hold thinking are not joined into one assistant turn: each goes back
    exactly as the API wrote it, with the request for the rest between them, and the tool loop after them works."""
    claude.reply_text("x" * 400, thinking="Plan.")
    claude.reply_tool_use("read_thread", {}, tool_id="toolu_1", thinking="Check the thread.")
    claude.reply_text("Done.")
    records: list[dict[str, Any]] = []
    loop = AgentLoop(thinking_client(sdk, 50), OneTool(), max_model_calls=5, crash=CrashPoints(), max_answer_tokens=500)
    await run(loop, records)
    messages = claude.requests[2]["messages"]
    assert [message["role"] for message in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == records[0]["content"] and messages[3]["content"] == records[1]["content"]
    assert messages[4]["content"][0]["type"] == "tool_result"


async def test_a_channel_model_older_than_adaptive_thinking_is_asked_without_it(
    claude: FakeAnthropic, sdk: anthropic.AsyncAnthropic
) -> None:
    """A channel may pick a model that predates adaptive thinking: its calls go without thinking (the API would
    refuse them), and without an effort level its model does not take."""
    claude.reply_text("plain")
    claude.reply_text("no xhigh")
    client = ClaudeClient(sdk, model=MODEL, max_tokens=1_000, thinking=Thinking("xhigh"))
    await client.step(SYSTEM, BASE, model="claude-haiku-4-5")
    await client.step(SYSTEM, BASE, model="claude-sonnet-4-6")
    old, newer = claude.requests[-2:]
    assert "thinking" not in old and "output_config" not in old
    assert newer["thinking"] == {"type": "adaptive"} and "output_config" not in newer


async def test_an_answer_cut_right_after_its_thinking_is_continued(
    sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic
) -> None:
    """max_tokens reached just as the thinking ended leaves a turn of one signed thinking block; the API refuses an
    assistant turn ending in thinking, so the continuation leaves it out, and the answer still comes."""
    thought = "t" * 200  # 50 tokens: exactly max_tokens, so the text never begins
    claude.reply_text("never reached", thinking=thought)
    claude.reply_text("The thread is short.", thinking="Go on.")
    records: list[dict[str, Any]] = []
    loop = AgentLoop(thinking_client(sdk, 50), OneTool(), max_model_calls=5, crash=CrashPoints(), max_answer_tokens=200)
    result = await run(loop, records)
    assert records[0]["stop_reason"] == "max_tokens" and records[0]["content"][-1]["type"] == "thinking"
    assert records[0]["content"][-1]["signature"]
    assert result.text == "The thread is short."
    assert all(message["role"] == "user" for message in claude.requests[1]["messages"])


async def test_a_task_thinks_as_its_journaled_setup_says_whatever_the_client_now_does(
    sdk: anthropic.AsyncAnthropic, claude: FakeAnthropic
) -> None:
    """A tool loop begun without thinking and resumed after THINKING was turned on goes on without it (one assistant
    turn, thought through one way), and one begun with it goes on with it: the setup journaled the choice."""
    claude.reply_text("plain")
    claude.reply_text("thought", thinking="Plan.")
    loop = AgentLoop(thinking_client(sdk), OneTool(), max_model_calls=5, crash=CrashPoints())
    for setup in (AgentSetup(thinking=""), AgentSetup(thinking="adaptive:low")):

        async def record(entry: dict[str, Any]) -> None:
            pass

        await loop.run(SYSTEM, BASE, [], record, THREAD, setup=setup)
    without, within = claude.requests[-2:]
    assert "thinking" not in without and "output_config" not in without
    assert within["thinking"] == {"type": "adaptive"} and within["output_config"] == {"effort": "low"}
    assert AgentSetup.from_record(AgentSetup(thinking="adaptive:low").to_record()).thinking == "adaptive:low"
    assert AgentSetup.from_record(AgentSetup().to_record()).thinking is None  # journaled before: the deployment's
