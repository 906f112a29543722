"""ClaudeClient against the fake Anthropic server, through the real anthropic SDK."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anthropic
import pytest
from tenacity import AsyncRetrying, stop_after_attempt, wait_none

from bot.agent.client import ClaudeClient, default_retry_policy
from bot.core.errors import ModelAuthError, ModelError, ModelRefused, ModelRequestError, ModelUnavailable
from tests.fakes import FakeAnthropic

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@contextlib.asynccontextmanager
async def quick_client(claude: FakeAnthropic, model: str) -> AsyncIterator[ClaudeClient]:
    """A client of the fake API that retries three times without waiting."""
    sdk = anthropic.AsyncAnthropic(api_key="test", base_url=claude.base_url, max_retries=0)
    quick = AsyncRetrying(
        stop=stop_after_attempt(3), wait=wait_none(), reraise=True, retry=default_retry_policy().retry
    )
    try:
        yield ClaudeClient(sdk, model=model, max_tokens=100, retry=quick)
    finally:
        await sdk.close()


@pytest.fixture
async def client(claude: FakeAnthropic) -> AsyncIterator[ClaudeClient]:
    async with quick_client(claude, "claude-test") as made:
        yield made


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


@pytest.mark.parametrize(
    ("status", "error_type", "error", "words"),
    [
        (401, "authentication_error", ModelAuthError, "An admin needs to fix the bot's ANTHROPIC_API_KEY"),
        (403, "permission_error", ModelAuthError, "An admin needs to fix"),
        (404, "not_found_error", ModelRequestError, "could not take this request"),
        (400, "invalid_request_error", ModelRequestError, "could not take this request"),
    ],
)
async def test_permanent_errors_fail_at_once_with_words_people_can_act_on(
    client: ClaudeClient, claude: FakeAnthropic, status: int, error_type: str, error: type[ModelError], words: str
) -> None:
    claude.reply_error(status, error_type, "no")
    with pytest.raises(error) as raised:
        await client.step("sys", MESSAGES)
    assert len(claude.requests) == 1  # no retry storm
    assert words in raised.value.user_message
    assert str(status) in str(raised.value) and "request id" in str(raised.value)  # the details, for the log


async def test_retries_stop_at_the_deadline(claude: FakeAnthropic) -> None:
    """Overloaded past the deadline: ModelUnavailable, after as many tries as fit in it, none started after."""
    sdk = anthropic.AsyncAnthropic(api_key="test", base_url=claude.base_url, max_retries=0)
    for _ in range(50):
        claude.reply_error(529, "overloaded_error", "Overloaded", retry_after=0.3)
    client = ClaudeClient(sdk, model="claude-test", max_tokens=100, retry=default_retry_policy(deadline=1.0))
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(ModelUnavailable) as raised:
            await client.step("sys", MESSAGES)
    finally:
        await sdk.close()
    assert asyncio.get_running_loop().time() - started < 1.5
    assert 2 <= len(claude.requests) <= 4  # a retry every 0.3 s (retry-after) within one second
    assert "overloaded" in raised.value.user_message


async def test_an_overload_mid_stream_is_retried(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """An `error` event inside a streamed 200 (overloaded) is tried again like a 529; the text restarts."""
    claude.reply_stream_error("partial answ", "overloaded_error", "Overloaded")
    claude.reply_text("whole answer")
    shown: list[str] = []

    async def on_text(text: str) -> None:
        shown.append(text)

    step = await client.step("sys", MESSAGES, on_text=on_text)
    assert step.content == [{"type": "text", "text": "whole answer"}] and len(claude.requests) == 2
    assert shown[-1] == "whole answer" and any(text.startswith("partial") for text in shown)


async def test_a_mid_stream_error_that_stays_is_model_unavailable(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """Overloaded mid-stream on every try: ModelUnavailable (Claude is busy), not a request Claude refused."""
    for _ in range(3):
        claude.reply_stream_error("partial", "overloaded_error", "Overloaded")

    async def on_text(text: str) -> None:
        pass

    with pytest.raises(ModelUnavailable):
        await client.step("sys", MESSAGES, on_text=on_text)
    assert len(claude.requests) == 3


async def test_a_call_too_long_for_the_sdk_unstreamed_is_streamed(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """max_tokens of 32,000 without on_text: the call streams (the SDK refuses it unstreamed) and answers."""
    step = await client.step("sys", MESSAGES, max_tokens=32_000)
    assert step.content == [{"type": "text", "text": "echo: hello"}]
    assert claude.last_request["stream"] is True and claude.last_request["max_tokens"] == 32_000
