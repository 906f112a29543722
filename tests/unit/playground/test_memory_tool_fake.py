"""The Anthropic fake takes the memory tool's definition as the API does, refuses a malformed one, and lets a
scripted model call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from anthropic.types import ToolUseBlock

from tests.fakes import FakeAnthropic

MODEL = "claude-test-model"
ASKED: Any = [{"role": "user", "content": "remember that Ana leads the team"}]


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(fake_api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="test", max_retries=0) as client:
        yield client


async def test_the_memory_tool_is_accepted_and_can_be_called(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """{"type": "memory_20250818", "name": "memory"} (as the SDK's own helper sends it) is taken; a scripted reply
    calls it with a command the SDK parses as a tool_use block."""
    fake_api.reply_tool_use("memory", {"command": "view", "path": "/memories"})
    message = await claude.messages.create(
        model=MODEL, max_tokens=100, messages=ASKED, tools=[{"type": "memory_20250818", "name": "memory"}]
    )
    [block] = message.content
    assert isinstance(block, ToolUseBlock) and block.name == "memory" and block.input["command"] == "view"
    assert fake_api.last_request["tools"] == [{"type": "memory_20250818", "name": "memory"}]


@pytest.mark.parametrize(
    ("tool", "problem"),
    [
        ({"type": "memory_20250818", "name": "notes"}, "name: Input should be 'memory'"),
        ({"type": "memory_20250818", "name": "memory", "input_schema": {}}, "input_schema: Extra inputs"),
        ({"type": "memory_20990101", "name": "memory"}, "does not match any of the expected tags"),
    ],
)
async def test_a_malformed_memory_tool_is_refused(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, tool: dict[str, Any], problem: str
) -> None:
    """A wrong name, an extra field or an unknown version is a 400 invalid_request_error, as from the API."""
    with pytest.raises(anthropic.BadRequestError, match=problem):
        await claude.messages.create(model=MODEL, max_tokens=100, messages=ASKED, tools=[tool])  # type: ignore[list-item]  # deliberately malformed
