"""The first_text benchmark's clocks and its reading of Slack calls."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anthropic
import pytest

from benchmarks.first_text import TimedAnthropic, streams_text, updates_text, working_cleared
from tests.fakes import Reply, SlackCall

MODEL = "claude-test-model"
ANSWER = "Benchmark answer. Benchmark answer."


@pytest.fixture
async def timed() -> AsyncIterator[TimedAnthropic]:
    async with TimedAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(timed: TimedAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=timed.base_url, api_key="test", max_retries=0) as client:
        yield client


async def test_a_streamed_answer_is_unchanged_and_its_first_text_delta_is_noted_before_the_client_reads_it(
    timed: TimedAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """The timed fake streams the scripted answer whole, noting its request and then one first-token time that
    comes before the client receives the first text."""
    timed.enqueue(Reply([{"type": "text", "text": ANSWER}], chunk_size=6, chunk_delay=0.01))
    sent = time.monotonic()
    first_read: float | None = None
    async with claude.messages.stream(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as s:
        async for text in s.text_stream:
            first_read = first_read or time.monotonic()
            assert text
        final = await s.get_final_message()
    assert [block.text for block in final.content if block.type == "text"] == [ANSWER]
    assert first_read is not None
    [requested], [first_text] = timed.requested, timed.first_text
    assert sent <= requested <= first_text <= first_read


async def test_an_answer_not_streamed_has_no_first_text_delta(
    timed: TimedAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """A JSON answer is noted as a request but gives no first-token time."""
    timed.enqueue(Reply([{"type": "text", "text": ANSWER}]))
    await claude.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert len(timed.requested) == 1
    assert timed.first_text == []


def test_only_a_stream_call_with_the_answers_start_as_markdown_text_shows_text() -> None:
    """A stream opened with a step update shows no text; an append of the answer's first characters does."""
    step = {"type": "task_update", "id": "reading", "title": "Reading the conversation", "status": "in_progress"}
    assert not streams_text(SlackCall("chat.startStream", {"chunks": [step]}, {}), ANSWER)
    assert streams_text(
        SlackCall("chat.appendStream", {"chunks": [{"type": "markdown_text", "text": "Bench"}]}, {}), ANSWER
    )
    assert not streams_text(SlackCall("chat.update", {"markdown_text": "Bench"}, {}), ANSWER)


def test_only_an_update_with_the_answers_start_shows_text() -> None:
    """The placeholder's update shows no answer; a preview of the answer (with its writing mark) does."""
    assert not updates_text(SlackCall("chat.update", {"text": ":hourglass_flowing_sand: Thinking…"}, {}), ANSWER)
    assert updates_text(SlackCall("chat.update", {"markdown_text": "Benchmark an ✍️"}, {}), ANSWER)
    assert not updates_text(SlackCall("chat.postMessage", {"text": ANSWER}, {}), ANSWER)


def test_the_task_is_over_when_its_working_indicator_is_cleared() -> None:
    """The session set back to active, or the reaction removed, ends a task; setting them does not."""
    assert working_cleared(SlackCall("agents.sessions.setStatus", {"status": "active"}, {}))
    assert not working_cleared(SlackCall("agents.sessions.setStatus", {"status": "processing"}, {}))
    assert working_cleared(SlackCall("reactions.remove", {"name": "eyes"}, {}))
    assert not working_cleared(SlackCall("reactions.add", {"name": "eyes"}, {}))
