"""The streamed view of an answer: what is appended to Slack's stream, when, and what is kept back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.agent.progress import Progress
from bot.core.errors import SlackError, StreamClosed
from bot.core.ports import TaskUpdate
from bot.tasks.split import PART_CHARS
from bot.tasks.stream import READING, StreamedReply


class Appends:
    """Records every append; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TaskUpdate]]] = []
        self.fail_with: Exception | None = None
        self.delay = 0.0

    async def __call__(self, text: str, updates: Sequence[TaskUpdate]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((text, list(updates)))

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.calls)

    @property
    def updates(self) -> list[tuple[str, str]]:
        return [(update.id, update.status) for _, updates in self.calls for update in updates]


async def test_the_first_text_goes_at_once_and_later_text_waits_for_the_interval() -> None:
    appends = Appends()
    stream = StreamedReply(appends, interval=0.2)
    await stream.progress(Progress("model_call"))
    await stream.show("Hel")
    await asyncio.sleep(0.02)
    assert appends.text == "Hel"
    assert ("reading", "complete") in appends.updates  # the model call began: the thread was read
    for text in ("Hello", "Hello, w", "Hello, world"):
        await stream.show(text)
        await asyncio.sleep(0.01)
    assert appends.text == "Hel"  # the rest waits for the interval, then goes in one append
    await asyncio.sleep(0.3)
    assert appends.text == "Hello, world"
    assert [text for text, _ in appends.calls if text] == ["Hel", "lo, world"]
    assert stream.text == "Hello, world"


async def test_a_tool_step_is_shown_at_once_and_marked_done_or_failed() -> None:
    appends = Appends()
    stream = StreamedReply(appends, interval=10)
    await stream.progress(Progress("model_call"))
    await stream.show("Let me look.")
    await asyncio.sleep(0.02)
    await stream.progress(Progress("tool_started", tool_id="t1", name="web_search", title="Searching the web"))
    await asyncio.sleep(0.02)
    await stream.progress(Progress("tool_finished", tool_id="t1", name="web_search", error=True))
    await asyncio.sleep(0.02)
    assert appends.updates == [("reading", "complete"), ("t1", "in_progress"), ("t1", "error")]
    assert [u.title for _, updates in appends.calls for u in updates][1] == "Searching the web"


async def test_each_model_call_s_text_follows_the_last_after_a_blank_line() -> None:
    appends = Appends()
    stream = StreamedReply(appends, interval=0)
    await stream.progress(Progress("model_call"))
    await stream.show("First.")
    await asyncio.sleep(0.02)
    await stream.progress(Progress("model_call"))
    await stream.show("Second.")
    await asyncio.sleep(0.02)
    assert stream.text == "First.\n\nSecond."
    assert stream.seen == "First.\n\nSecond."


async def test_a_retried_call_that_restarts_its_text_is_not_appended_twice() -> None:
    appends = Appends()
    stream = StreamedReply(appends, interval=0)
    await stream.progress(Progress("model_call"))
    await stream.show("An answer that bre")
    await asyncio.sleep(0.02)
    await stream.show("An")  # the call was retried: its text starts over
    await stream.show("An answer that breaks no more.")
    await asyncio.sleep(0.02)
    assert appends.text == "An answer that bre"
    assert stream.text == "An answer that bre"  # the final text replaces it (reply.py)


async def test_no_more_than_one_part_of_text_is_streamed() -> None:
    appends = Appends()
    stream = StreamedReply(appends, interval=0)
    await stream.progress(Progress("model_call"))
    await stream.show("x" * (PART_CHARS + 500))
    await asyncio.sleep(0.05)
    await stream.show("x" * (PART_CHARS + 900))
    await asyncio.sleep(0.05)
    assert len(appends.text) == PART_CHARS
    assert stream.seen == "x" * PART_CHARS + "x" * 900


async def test_a_stream_slack_ended_is_left_alone() -> None:
    appends = Appends()
    appends.fail_with = StreamClosed("Slack chat.appendStream failed: stopped_by_user", "stopped_by_user")
    stream = StreamedReply(appends, interval=0)
    await stream.progress(Progress("model_call"))
    await stream.show("Hello")
    await asyncio.sleep(0.02)
    assert stream.closed
    appends.fail_with = None
    await stream.show("Hello there")
    await asyncio.sleep(0.02)
    assert appends.calls == []


@pytest.mark.parametrize("failures, closed", [(2, False), (3, True)])
async def test_appends_refused_again_and_again_stop_the_streaming(failures: int, closed: bool) -> None:
    appends = Appends()
    appends.fail_with = SlackError("Slack chat.appendStream failed: ratelimited", "ratelimited")
    stream = StreamedReply(appends, interval=0)
    await stream.progress(Progress("model_call"))
    for n in range(failures):
        await stream.show("Hello" + "!" * n)
        await asyncio.sleep(0.02)
    assert stream.closed is closed


async def test_settling_waits_for_the_append_under_way_and_stops_the_rest() -> None:
    appends = Appends()
    appends.delay = 0.1
    stream = StreamedReply(appends, interval=0)
    await stream.progress(Progress("model_call"))
    await stream.show("Hello")
    await asyncio.sleep(0.01)
    await stream.show("Hello, world")
    await stream.settle()
    assert appends.text == "Hello"  # the rest goes with the stream's end
    await stream.show("Hello, world!")
    await asyncio.sleep(0.02)
    assert appends.text == "Hello"


async def test_closing_marks_every_step_still_in_progress_done() -> None:
    stream = StreamedReply(Appends(), interval=10)
    await stream.progress(Progress("tool_started", tool_id="t1", name="lookup"))
    await stream.settle()
    closing = stream.closing_updates()
    assert (READING.id, "complete") in [(u.id, u.status) for u in closing]
    assert ("t1", "complete") in [(u.id, u.status) for u in closing]
