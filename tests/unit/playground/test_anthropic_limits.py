"""The Anthropic fake's output limits: replies stop at max_tokens, which has a ceiling, and long answers continue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest
from anthropic.types import MessageParam, TextBlock, ToolUseBlock

from playground.long_answers import continuing, written_so_far
from tests.fakes import FakeAnthropic, Reply

MODEL = "claude-test-model"


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(fake_api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="test", max_retries=0) as client:
        yield client


def asked(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def only_text(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


async def test_a_text_longer_than_max_tokens_is_cut_there(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """A scripted answer over max_tokens (4 characters a token) stops there with stop_reason max_tokens."""
    fake_api.reply_text("abcd" * 30)
    message = await claude.messages.create(model=MODEL, max_tokens=10, messages=asked("long please"))
    assert only_text(message) == "abcd" * 10
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 10)
    fake_api.reply_text("abcd" * 10)
    exact = await claude.messages.create(model=MODEL, max_tokens=10, messages=asked("again"))
    assert (only_text(exact), exact.stop_reason) == ("abcd" * 10, "end_turn"), "exactly max_tokens fits"


async def test_a_streamed_answer_is_cut_at_max_tokens_too(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Streaming sends only the text within max_tokens and ends with stop_reason max_tokens."""
    fake_api.reply_text("word " * 100)
    async with claude.messages.stream(model=MODEL, max_tokens=20, messages=asked("long")) as stream:
        streamed = "".join([text async for text in stream.text_stream])
        final = await stream.get_final_message()
    assert streamed == ("word " * 100)[:80] == only_text(final)
    assert (final.stop_reason, final.usage.output_tokens) == ("max_tokens", 20)


async def test_a_tool_call_cut_at_max_tokens_comes_back_unfinished(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """When max_tokens falls inside a tool call, the text before it is whole and the call is left incomplete."""
    fake_api.reply_tool_use("search", {"query": "q" * 200}, text_before="Let me look.")
    message = await claude.messages.create(model=MODEL, max_tokens=10, messages=asked("find"))
    text, call = message.content
    assert isinstance(text, TextBlock) and text.text == "Let me look."
    assert isinstance(call, ToolUseBlock) and call.input == {} and message.stop_reason == "max_tokens"
    fake_api.reply_tool_use("search", {"query": "q" * 200}, text_before="Let me look.")
    async with claude.messages.stream(model=MODEL, max_tokens=10, messages=asked("find")) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens" and isinstance(final.content[1], ToolUseBlock)


async def test_max_tokens_above_the_output_limit_is_refused(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """max_tokens over 64,000 is a 400 invalid_request_error worded like the API's."""
    with pytest.raises(anthropic.BadRequestError) as info:
        # Streamed: the SDK itself refuses a non-streamed request that may take longer than ten minutes.
        async with claude.messages.stream(model="claude-sonnet-5-5", max_tokens=64_001, messages=asked("hi")) as s:
            await s.get_final_message()
    assert info.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for "
            "claude-sonnet-5-5",
        },
        "request_id": info.value.request_id,
    }
    fake_api.reply_text("fine")
    async with claude.messages.stream(model=MODEL, max_tokens=64_000, messages=asked("hi")) as stream:
        assert (await stream.get_final_message()).stop_reason == "end_turn"


@pytest.mark.parametrize("model", ["claude-opus-4-6", "claude-sonnet-5-5", "claude-haiku-4-7-20260101"])
async def test_current_models_refuse_a_prefilled_assistant_turn(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, model: str
) -> None:
    """Claude 4.6 and later refuse a conversation that ends with an assistant message."""
    messages: list[MessageParam] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}]
    with pytest.raises(anthropic.BadRequestError, match="does not support assistant message prefill"):
        await claude.messages.create(model=model, max_tokens=10, messages=messages)


async def test_a_turn_paused_by_a_server_tool_is_continued_as_it_was(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """pause_turn is continued by sending the paused assistant turn back: not a prefill, even on current models."""
    paused: list[MessageParam] = [
        {"role": "user", "content": "search it"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Searching."},
                {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "x"}},
            ],
        },
    ]
    fake_api.reply_text("Found it.")
    assert (await claude.messages.create(model=MODEL, max_tokens=10, messages=paused)).content


async def test_older_models_take_a_prefill_without_trailing_whitespace(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Older models continue a prefilled assistant turn, but not one that ends with whitespace."""
    trailing: list[MessageParam] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello "}]
    with pytest.raises(anthropic.BadRequestError, match="final assistant content cannot end with trailing whitespace"):
        await claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=trailing)
    fake_api.reply_text("world")
    trimmed: list[MessageParam] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]
    assert (await claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=trimmed)).content


async def test_continuing_writes_a_long_answer_across_max_tokens_stops(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """continuing() answers each request with the rest of its text, so continued pieces join into the whole."""
    full = "".join(f"Paragraph {n}: " + "lorem ipsum " * 5 + "\n\n" for n in range(10))
    fake_api.set_default(continuing(full))
    messages: list[MessageParam] = [{"role": "user", "content": "You (<@U1>): write ten paragraphs"}]
    pieces: list[str] = []
    for _ in range(20):
        message = await claude.messages.create(model="claude-sonnet-5-5", max_tokens=50, messages=messages)
        pieces.append(only_text(message))
        if message.stop_reason != "max_tokens":
            break
        messages += [
            {"role": "assistant", "content": pieces[-1]},
            {"role": "user", "content": "Continue exactly where you stopped."},
        ]
    assert "".join(pieces) == full and len(pieces) == -(-len(full) // 200)


def test_written_so_far_finds_the_question_and_tolerates_seams() -> None:
    """Pieces after the question count, stripped at their seams; a question that says "continue" is still one."""
    full = "One two three four five six"
    earlier = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "an older answer"}]
    question = {"role": "user", "content": "please continue the story"}
    assert written_so_far([*earlier, question], full) == 0
    pieces = [
        {"role": "assistant", "content": [{"type": "text", "text": "One two "}]},
        {"role": "user", "content": "continue"},
        {"role": "assistant", "content": "three"},
        {"role": "user", "content": "Continue where you stopped."},
    ]
    assert full[written_so_far([*earlier, question, *pieces], full) :] == " four five six"
    lost_a_piece = [question, {"role": "assistant", "content": "One"}, {"role": "user", "content": "continue"}]
    lost_a_piece.append({"role": "assistant", "content": "three"})
    with pytest.raises(LookupError):
        written_so_far(lost_a_piece, full)


async def test_a_reply_without_max_tokens_is_not_cut(fake_api: FakeAnthropic) -> None:
    """Unvalidated requests without max_tokens (a test's own shortcut) get the whole scripted text."""
    fake_api.validate = False
    fake_api.enqueue(Reply([{"type": "text", "text": "x" * 100}]))
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="k", max_retries=0) as client:
        raw = await client.post(
            "/v1/messages", body={"model": MODEL, "messages": asked("hi")}, cast_to=anthropic.types.Message
        )
    assert only_text(raw) == "x" * 100
