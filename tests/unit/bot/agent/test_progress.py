"""Progress events of an answer: model calls, client tools around their run, server tools from the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from tenacity import AsyncRetrying, stop_after_attempt, wait_none

from bot.agent.client import ClaudeClient, default_retry_policy
from bot.agent.loop import AgentLoop, LoopResult
from bot.agent.progress import Progress, tool_title
from bot.agent.setup import AgentSetup
from bot.agent.tools import ToolBox, ToolCall, ToolResult
from bot.core.faults import CrashPoints
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, Reply

THREAD = ThreadRef("T1", "C1", "1.000001")
SYSTEM = [{"type": "text", "text": "sys"}]
BASE = [{"role": "user", "content": "alice: what is new?"}]


class Tools(ToolBox):
    """read_thread answering from memory, failing when asked to; it notes what progress was told before it ran."""

    def __init__(self, seen: list[Progress], *, fail: bool = False) -> None:
        self.listed: list[dict[str, Any]] = [{"name": "read_thread", "input_schema": {"type": "object"}}]
        self._seen = seen
        self._fail = fail
        self.seen_when_run: list[Progress] = []

    def definitions(self, setup: AgentSetup) -> list[dict[str, Any]]:
        return self.listed

    async def run(self, call: ToolCall) -> ToolResult:
        self.seen_when_run = list(self._seen)
        return ToolResult("could not read" if self._fail else "alice: hi", is_error=self._fail)


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
    yield ClaudeClient(sdk, model="claude-test", max_tokens=100, retry=quick)
    await sdk.close()


async def run(
    claude: ClaudeClient, tools: Tools, seen: list[Progress], journal: list[dict[str, Any]] | None = None
) -> LoopResult:
    loop = AgentLoop(claude, tools, max_model_calls=5, max_answer_tokens=1_000, crash=CrashPoints())
    recorded: list[dict[str, Any]] = []

    async def record(step: dict[str, Any]) -> None:
        recorded.append(step)

    async def on_progress(event: Progress) -> None:
        seen.append(event)

    return await loop.run(SYSTEM, BASE, journal or [], record, THREAD, on_progress=on_progress)


def search_call(tool_id: str) -> dict[str, Any]:
    return {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": "news"}}


def search_result(tool_id: str, content: Any) -> dict[str, Any]:
    return {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": content}


HIT = [{"type": "web_search_result", "url": "https://example.com", "title": "Example", "encrypted_content": "x"}]


async def test_a_client_tool_is_started_then_finished_around_its_run(
    model: FakeAnthropic, claude: ClaudeClient
) -> None:
    """model_call, tool_started (before the tool runs, with its title), tool_finished, model_call: in that order."""
    model.reply_tool_use("read_thread", {}, tool_id="toolu_1")
    model.reply_text("Nothing new.")
    seen: list[Progress] = []
    tools = Tools(seen)
    result = await run(claude, tools, seen)
    assert result.text == "Nothing new."
    assert seen == [
        Progress("model_call"),
        Progress("tool_started", "toolu_1", "read_thread", "Reading the thread"),
        Progress("tool_finished", "toolu_1", "read_thread", "Reading the thread", error=False),
        Progress("model_call"),
    ]
    assert tools.seen_when_run[-1].kind == "tool_started"


async def test_a_failed_client_tool_finishes_with_an_error(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """A tool result marked is_error finishes its step with error=True."""
    model.reply_tool_use("read_thread", {}, tool_id="toolu_1")
    model.reply_text("I could not read it.")
    seen: list[Progress] = []
    await run(claude, Tools(seen, fail=True), seen)
    assert [event for event in seen if event.kind == "tool_finished"] == [
        Progress.tool_finished("toolu_1", "read_thread", error=True)
    ]


async def test_server_tools_are_reported_from_the_stream(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """A server_tool_use block starts a tool and its *_tool_result block finishes it; an error object as the
    result's content finishes it with error=True."""
    model.enqueue(
        Reply(
            [
                search_call("srvtoolu_1"),
                search_result("srvtoolu_1", HIT),
                search_call("srvtoolu_2"),
                search_result(
                    "srvtoolu_2", {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
                ),
                {"type": "text", "text": "Here is the news."},
            ]
        )
    )
    seen: list[Progress] = []
    result = await run(claude, Tools(seen), seen)
    assert result.text == "Here is the news."
    assert seen == [
        Progress("model_call"),
        Progress("tool_started", "srvtoolu_1", "web_search", "Searching the web"),
        Progress("tool_finished", "srvtoolu_1", "web_search", "Searching the web", error=False),
        Progress("tool_started", "srvtoolu_2", "web_search", "Searching the web"),
        Progress("tool_finished", "srvtoolu_2", "web_search", "Searching the web", error=True),
    ]


async def test_steps_replayed_from_the_journal_emit_nothing(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """Resumed after a journaled tool round, only the new model call is reported."""
    journal = [
        {
            "kind": "model",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_thread", "input": {}}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 100, "output_tokens": 10},
        },
        {"kind": "tool", "tool_use_id": "toolu_1", "name": "read_thread", "result": "alice: hi"},
    ]
    model.reply_text("Answer.")
    seen: list[Progress] = []
    await run(claude, Tools(seen), seen, journal)
    assert seen == [Progress("model_call")]


async def test_a_continuation_is_no_new_model_call(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """An answer continued after max_tokens reports one model_call: its text does not restart."""
    model.enqueue(Reply([{"type": "text", "text": "Long "}], "max_tokens", usage={"output_tokens": 100}))
    model.reply_text("answer.")
    seen: list[Progress] = []
    result = await run(claude, Tools(seen), seen)
    assert result.text == "Long answer." and seen == [Progress("model_call")]


def test_tool_titles_are_what_people_read() -> None:
    """Known tools have a human title; any other shows its name."""
    assert tool_title("search_slack") == "Searching Slack"
    assert tool_title("web_search") == "Searching the web"
    assert tool_title("web_fetch") == "Reading a web page"
    assert tool_title("code_execution") == "Running code"
    assert tool_title("bash_code_execution") == "Running code"
    assert tool_title("lookup_order") == "lookup_order"


async def test_a_server_tool_of_a_broken_stream_finishes_as_failed(model: FakeAnthropic, claude: ClaudeClient) -> None:
    """A stream that breaks after a server tool started finishes that tool with an error; the retry reports its
    own tool afresh."""
    broken = [search_call("srvtoolu_1"), {"type": "text", "text": "Searching"}]
    model.enqueue(
        Reply(broken, stream_error=("overloaded_error", "Overloaded"), status=529, error_type="overloaded_error")
    )
    model.enqueue(
        Reply([search_call("srvtoolu_2"), search_result("srvtoolu_2", HIT), {"type": "text", "text": "Done."}])
    )
    seen: list[Progress] = []
    result = await run(claude, Tools(seen), seen)
    assert result.text == "Done."
    assert [(event.kind, event.tool_id, event.error) for event in seen] == [
        ("model_call", "", False),
        ("tool_started", "srvtoolu_1", False),
        ("tool_finished", "srvtoolu_1", True),
        ("tool_started", "srvtoolu_2", False),
        ("tool_finished", "srvtoolu_2", False),
    ]
