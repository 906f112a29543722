"""ClaudeClient against the fake Anthropic server, through the real anthropic SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anthropic
import pytest
from tenacity import AsyncRetrying, stop_after_attempt, wait_none

from bot.errors import ModelError, ModelRefused
from bot.llm import ClaudeClient, default_retry_policy
from tests.fakes import FakeAnthropic

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def client(claude: FakeAnthropic) -> AsyncIterator[ClaudeClient]:
    sdk = anthropic.AsyncAnthropic(api_key="test", base_url=claude.base_url, max_retries=0)
    quick = AsyncRetrying(
        stop=stop_after_attempt(3), wait=wait_none(), reraise=True, retry=default_retry_policy().retry
    )
    yield ClaudeClient(sdk, model="claude-test", max_tokens=100, retry=quick)
    await sdk.close()


async def test_concurrent_calls_each_make_exactly_one_request(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """Fifty calls at once share one retry policy without tangling it: fifty requests, fifty answers."""
    steps = await asyncio.gather(*(client.step("sys", MESSAGES) for _ in range(50)))
    assert len(claude.requests) == 50
    assert all(step.content[0]["text"] == "echo: hello" for step in steps)


async def test_transient_errors_are_retried_and_permanent_ones_are_not(
    client: ClaudeClient, claude: FakeAnthropic
) -> None:
    """A 529 then a 429 are retried to success; a 400 fails at once as ModelError."""
    claude.reply_error(529, "overloaded_error", "Overloaded")
    claude.reply_error(429, "rate_limit_error", "slow down", retry_after=0)
    claude.reply_text("finally")
    step = await client.step("sys", MESSAGES)
    assert step.content == [{"type": "text", "text": "finally"}] and len(claude.requests) == 3
    claude.reply_error(400, "invalid_request_error", "bad")
    with pytest.raises(ModelError, match="400"):
        await client.step("sys", MESSAGES)
    assert len(claude.requests) == 4


async def test_refusal_is_its_own_error(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """stop_reason 'refusal' raises ModelRefused, which the executor answers plainly instead of retrying."""
    claude.reply_text("", stop_reason="refusal")
    with pytest.raises(ModelRefused):
        await client.step("sys", MESSAGES)
