"""Whole long answers: a call that stops at max_tokens is continued, journaled, capped, and joined at its seams.

The model is the fake Anthropic server, spoken to by the real SDK through ClaudeClient; each reply is scripted to
stop at max_tokens with the output tokens a real cut reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import anthropic
import pytest
from tenacity import AsyncRetrying, stop_after_attempt, wait_none

from bot.agent.client import ClaudeClient, default_retry_policy
from bot.agent.continuation import CONTINUE_PROMPT, CUT_CALL_NOTE, joined, preview
from bot.agent.loop import AgentLoop, LoopResult
from bot.agent.setup import AgentSetup
from bot.agent.steps import holds_answer
from bot.agent.tools import ToolBox, ToolCall, ToolResult
from bot.core.faults import CrashPoints
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, Reply

THREAD = ThreadRef("T1", "C1", "1.000001")
SYSTEM = [{"type": "text", "text": "sys"}]
BASE = [{"role": "user", "content": "alice: write me a long story"}]
MAX_TOKENS = 100  # of each call, as MAX_OUTPUT_TOKENS


def cut(text: str, output_tokens: int = MAX_TOKENS) -> Reply:
    """A reply that stopped at max_tokens after `text`, having written `output_tokens`."""
    return Reply([{"type": "text", "text": text}], "max_tokens", usage={"output_tokens": output_tokens})


def ended(text: str) -> Reply:
    """A reply that ended by itself."""
    return Reply([{"type": "text", "text": text}], "end_turn", usage={"output_tokens": 10})


class NoTools(ToolBox):
    """A ToolBox with read_thread only, answering from memory."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = [{"name": "read_thread", "input_schema": {"type": "object"}}]
        self.calls: list[str] = []

    def definitions(self, setup: AgentSetup) -> list[dict[str, Any]]:
        return self.listed

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call.name)
        return ToolResult("alice: hello")


@dataclass
class Run:
    """One loop run's outcome: its result, the journal after it, and every text on_text saw."""

    result: LoopResult
    journal: list[dict[str, Any]]
    shown: list[str] = field(default_factory=list)


@pytest.fixture
async def model() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(model: FakeAnthropic) -> AsyncIterator[ClaudeClient]:
    sdk = anthropic.AsyncAnthropic(api_key="test", base_url=model.base_url, max_retries=0)
    quick = AsyncRetrying(
        stop=stop_after_attempt(2), wait=wait_none(), reraise=True, retry=default_retry_policy().retry
    )
    yield ClaudeClient(sdk, model="claude-test", max_tokens=MAX_TOKENS, retry=quick)
    await sdk.close()


async def run(claude: ClaudeClient, journal: list[dict[str, Any]], *, cap: int = 1_000, max_calls: int = 5) -> Run:
    """Run the loop from `journal` (extended in place as steps are journaled)."""
    loop = AgentLoop(claude, NoTools(), max_model_calls=max_calls, max_answer_tokens=cap, crash=CrashPoints())
    shown: list[str] = []

    async def record(step: dict[str, Any]) -> None:
        journal.append(step)

    async def on_text(text: str) -> None:
        shown.append(text)

    result = await loop.run(SYSTEM, BASE, list(journal), record, THREAD, on_text=on_text)
    return Run(result, journal, shown)


def grows(texts: list[str]) -> bool:
    """Each text shown extends the one before: nothing shown is taken back."""
    return all(later.startswith(earlier) for earlier, later in pairwise(texts))


async def test_an_answer_cut_twice_is_continued_to_its_end(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """Two max_tokens stops: two more calls, each journaled, asking for the rest after the answer so far; the
    answer is the three pieces in order, and the text shown only ever grows."""
    for reply in (cut("Once upon a time, a fox "), cut("lived in a wood ne"), ended("ar the sea. The end.")):
        model.enqueue(reply)
    outcome = await run(claude, [])
    assert outcome.result.text == "Once upon a time, a fox lived in a wood near the sea. The end."
    assert outcome.result.stop_reason == "end_turn" and outcome.result.usage.model_calls == 3
    assert [step["stop_reason"] for step in outcome.journal] == ["max_tokens", "max_tokens", "end_turn"]
    third = model.requests[2]["messages"]
    assert third[:-2] == BASE  # the question, then the answer so far as one turn, then the request for the rest
    assert third[-2] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Once upon a time, a fox lived in a wood ne"}],
    }
    assert third[-1] == {"role": "user", "content": CONTINUE_PROMPT}
    assert outcome.shown[-1] == "Once upon a time, a fox lived in a wood near the sea. The end."
    assert grows(outcome.shown)


async def test_a_resumed_task_continues_from_its_journal(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """A crash between two continuations: the journaled pieces are not asked for again, the next piece is, and the
    answer is whole."""
    model.enqueue(cut("def main():\n    for n in range(3):\n"))
    model.enqueue(cut("        print(n)\n"))
    model.enqueue(ended("    return 0\n"))
    journal: list[dict[str, Any]] = []
    loop = AgentLoop(claude, NoTools(), max_model_calls=5, max_answer_tokens=1_000, crash=CrashPoints())

    async def crash_after_two(step: dict[str, Any]) -> None:
        journal.append(step)
        if len(journal) == 2:
            raise SystemExit("killed")  # the process dies right after journaling the second piece

    with pytest.raises(SystemExit):
        await loop.run(SYSTEM, BASE, [], crash_after_two, THREAD)
    assert not loop.holds_answer(journal) and not holds_answer(journal)
    resumed = await run(claude, journal)
    assert len(model.requests) == 3  # one call after the resume, for the third piece only
    assert resumed.result.text == "def main():\n    for n in range(3):\n        print(n)\n    return 0"
    assert (
        model.requests[2]["messages"][-2]["content"][0]["text"]
        == "def main():\n    for n in range(3):\n        print(n)\n"
    )
    assert resumed.shown[0].startswith("def main():\n    for n in range(3):\n        print(n)\n")  # not from ""
    assert loop.holds_answer(resumed.journal)


async def test_the_answer_stops_at_the_cap_and_says_it_was_cut(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """With a cap of 250 output tokens: two full pieces, a third asked for only the 50 left, then the cut note."""
    for piece in ("a" * 40, "b" * 40, "c" * 20, "never asked for"):
        model.enqueue(cut(piece, output_tokens=MAX_TOKENS if piece[0] != "c" else 50))
    outcome = await run(claude, [], cap=250)
    assert [request["max_tokens"] for request in model.requests] == [100, 100, 50]
    assert outcome.result.text.startswith("a" * 40 + "b" * 40 + "c" * 20 + "\n\n")
    assert "cut short" in outcome.result.text and outcome.result.stop_reason == "max_tokens"
    assert model.pending == 1
    assert holds_answer(outcome.journal, 250) and not holds_answer(outcome.journal, 251)


async def test_continuations_do_not_spend_the_tool_call_budget(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """With MAX_MODEL_CALLS at 2, a tool round then an answer cut three times still arrives whole."""
    model.reply_tool_use("read_thread", {}, tool_id="toolu_1")
    for reply in (cut("One, "), cut("two, "), cut("three, "), ended("four.")):
        model.enqueue(reply)
    outcome = await run(claude, [], max_calls=2)
    assert outcome.result.text == "One, two, three, four."
    assert outcome.result.usage.model_calls == 5


async def test_a_tool_call_cut_off_is_dropped_and_asked_again(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """A call whose input max_tokens cut off is not replayed (the API would want its result): the continuation
    request holds the text before it and says the call was not made; a whole call before it would be run."""
    partial_call = {"type": "tool_use", "id": "toolu_cut", "name": "read_thread", "input": {"li": 1}}
    model.enqueue(
        Reply([{"type": "text", "text": "Let me look."}, partial_call], "max_tokens", usage={"output_tokens": 100})
    )
    model.enqueue(ended(" Nothing to find."))
    outcome = await run(claude, [])
    second = model.requests[1]["messages"]  # the fake refuses a tool_use without its tool_result
    assert second[-2] == {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}]}
    assert second[-1] == {"role": "user", "content": CONTINUE_PROMPT + CUT_CALL_NOTE}
    assert outcome.result.text == "Let me look. Nothing to find."


async def test_a_whole_tool_call_before_the_cut_one_is_run(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """A max_tokens step with a whole tool call and a cut one: the whole one is run and answered, the cut one
    dropped, and the next call is a tool round's, not a continuation."""
    whole = {"type": "tool_use", "id": "toolu_1", "name": "read_thread", "input": {}}
    partial_call = {"type": "tool_use", "id": "toolu_2", "name": "read_thread", "input": {}}
    model.enqueue(Reply([whole, partial_call], "max_tokens", usage={"output_tokens": 100}))
    model.enqueue(ended("Read it."))
    outcome = await run(claude, [])
    assert [step["kind"] for step in outcome.journal] == ["model", "tool", "model"]
    second = model.requests[1]["messages"]
    assert [block["id"] for block in second[-2]["content"]] == ["toolu_1"]
    assert [block["tool_use_id"] for block in second[-1]["content"]] == ["toolu_1"]
    assert outcome.result.text == "Read it."


async def test_a_restarted_line_is_not_doubled(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """A continuation that starts the cut line again adds only what is new, and the preview never shows the
    repeat."""
    model.enqueue(cut("```python\nfor item in items:\n    total += item.pri"))
    model.enqueue(ended("    total += item.price\n```"))
    outcome = await run(claude, [])
    assert outcome.result.text == "```python\nfor item in items:\n    total += item.price\n```"
    assert grows(outcome.shown)
    assert all("pri    total" not in text for text in outcome.shown)


@pytest.mark.parametrize(
    ("before", "after", "whole"),
    [
        ("Hello, wor", "ld!", "Hello, world!"),  # mid-word
        ("First line.\n", "Second line.", "First line.\nSecond line."),  # a newline at the cut is kept
        ("spaces at the seam ", " are kept", "spaces at the seam  are kept"),
        ("```\ncode\n", "```\nafter", "```\ncode\n```\nafter"),  # a fence across the seam stays whole
        ("Intro.\nThe quick bro", "The quick brown fox", "Intro.\nThe quick brown fox"),  # a restarted line
        ("    return to", "return total", "    return total"),  # restarted without its indent
        ("ha", "ha!", "haha!"),  # too short to be a restart: kept
        ("x = 1\ny = ", "y = 2", "x = 1\ny = y = 2"),  # "y = " is too short to tell from new text
    ],
)
def test_seams(before: str, after: str, whole: str) -> None:
    """Pieces join with nothing lost or doubled; what is only maybe a repeat is kept."""
    assert joined(before, after) == whole


def test_the_preview_holds_back_only_a_possible_repeat() -> None:
    """While the continuation could still be a restart of the cut line, only the answer so far shows."""
    before = "Intro.\nThe quick bro"
    assert preview(before, "") == before
    assert preview(before, "The qu") == before
    assert preview(before, "The quick brown") == "Intro.\nThe quick brown"
    assert preview(before, "wn fox") == "Intro.\nThe quick brown fox"
    assert preview(before, "The quack") == before + "The quack"


class NotedCrashPoints(CrashPoints):
    """Crash points that note each one reached instead of killing the process."""

    def __init__(self) -> None:
        super().__init__()
        self.reached_points: list[str] = []

    def reached(self, name: str) -> None:
        self.reached_points.append(name)


async def test_each_cut_piece_passes_the_answer_cut_crash_point(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """BOT_CRASH_AT=answer.cut can kill the process after each piece that is to be continued, and only then."""
    for reply in (cut("One, "), cut("two, "), ended("three.")):
        model.enqueue(reply)
    crash = NotedCrashPoints()
    loop = AgentLoop(claude, NoTools(), max_model_calls=5, max_answer_tokens=1_000, crash=crash)

    async def record(step: dict[str, Any]) -> None:
        pass

    await loop.run(SYSTEM, BASE, [], record, THREAD)
    assert crash.reached_points == ["answer.cut", "answer.cut"]
