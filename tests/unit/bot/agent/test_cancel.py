"""Stopping an answer: cancelling the task that runs the loop closes the model's stream and makes no further call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from bot.agent.client import ClaudeClient
from bot.agent.loop import AgentLoop, LoopResult
from bot.agent.progress import Progress
from bot.agent.setup import AgentSetup
from bot.agent.tools import ToolBox, ToolCall, ToolResult
from bot.core.faults import CrashPoints
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, Reply, wait_until

THREAD = ThreadRef("T1", "C1", "1.000001")
SYSTEM = [{"type": "text", "text": "sys"}]
BASE = [{"role": "user", "content": "alice: tell me everything"}]
# About five seconds of streaming: 250 deltas of 8 characters, 20 ms apart.
SLOW = Reply([{"type": "text", "text": "word " * 400}], chunk_size=8, chunk_delay=0.02)


class WatchedAnthropic(FakeAnthropic):
    """The fake model, noting when each /v1/messages handler ended and whether the client had hung up by then."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: list[tuple[float, bool]] = []  # (time.monotonic(), the client had closed the connection)

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)

        @web.middleware
        async def watch(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            finally:
                if request.path == "/v1/messages":
                    transport = request.transport  # None once the connection is lost
                    self.ended.append((time.monotonic(), transport is None or transport.is_closing()))

        app.middlewares.append(watch)


class SlowTools(ToolBox):
    """read_thread that takes until released, noting that it started."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = [{"name": "read_thread", "input_schema": {"type": "object"}}]
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    def definitions(self, setup: AgentSetup) -> list[dict[str, Any]]:
        return self.listed

    async def run(self, call: ToolCall) -> ToolResult:
        self.started.set()
        await self.release.wait()
        return ToolResult("alice: hi")


@pytest.fixture
async def model() -> AsyncIterator[WatchedAnthropic]:
    async with WatchedAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(model: WatchedAnthropic) -> AsyncIterator[ClaudeClient]:
    sdk = anthropic.AsyncAnthropic(api_key="test", base_url=model.base_url, max_retries=0)
    yield ClaudeClient(sdk, model="claude-test", max_tokens=4_000)
    await sdk.close()


class Observed:
    """What the loop told its caller: texts shown, progress, steps journaled."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.progress: list[Progress] = []
        self.journal: list[dict[str, Any]] = []

    def start(self, loop: AgentLoop) -> asyncio.Task[LoopResult]:
        async def record(step: dict[str, Any]) -> None:
            self.journal.append(step)

        async def on_text(text: str) -> None:
            self.shown.append(text)

        async def on_progress(event: Progress) -> None:
            self.progress.append(event)

        run = loop.run(SYSTEM, BASE, [], record, THREAD, on_text=on_text, on_progress=on_progress)
        return asyncio.create_task(run)

    def counts(self) -> tuple[int, int, int]:
        return len(self.shown), len(self.progress), len(self.journal)


async def test_cancelling_mid_stream_closes_the_model_connection_at_once(
    model: WatchedAnthropic, claude: ClaudeClient
) -> None:
    """Cancelled while the answer streams: the server sees the connection closed well within a second, and the
    loop shows, reports and journals nothing more."""
    model.enqueue(SLOW)
    seen = Observed()
    task = seen.start(AgentLoop(claude, SlowTools(), max_model_calls=5, crash=CrashPoints()))
    await wait_until(lambda: len(seen.shown) >= 3)
    task.cancel()
    cancelled_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    [(ended_at, client_gone)] = await wait_until(lambda: model.ended, timeout=2.0)
    assert client_gone and ended_at - cancelled_at < 0.5  # the full stream would have taken five seconds
    after_cancel = seen.counts()
    await asyncio.sleep(0.2)  # nothing more may happen: there is no event to wait for
    assert seen.counts() == after_cancel and seen.journal == []
    assert len(model.requests) == 1


async def test_cancelling_during_a_tool_makes_no_further_call(model: WatchedAnthropic, claude: ClaudeClient) -> None:
    """Cancelled while a client tool runs: its result is not journaled and the model is not asked again."""
    model.reply_tool_use("read_thread", {}, tool_id="toolu_1")
    model.reply_text("never asked for")
    tools = SlowTools()
    seen = Observed()
    task = seen.start(AgentLoop(claude, tools, max_model_calls=5, crash=CrashPoints()))
    await asyncio.wait_for(tools.started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    tools.release.set()
    await asyncio.sleep(0.1)  # nothing more may happen: there is no event to wait for
    assert len(model.requests) == 1 and model.pending == 1
    assert [step["kind"] for step in seen.journal] == ["model"]
    assert [event.kind for event in seen.progress] == ["model_call", "tool_started"]
