"""The Anthropic fake's extended thinking, through the real SDK: what it refuses, how it signs and streams thinking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from tests.fakes import FakeAnthropic, Reply

MODEL = "claude-sonnet-4-6"  # returns thinking summarized unless asked otherwise
NEWER = "claude-sonnet-5-5"  # returns it omitted unless asked otherwise
ADAPTIVE: dict[str, Any] = {"type": "adaptive"}
QUESTION: list[Any] = [{"role": "user", "content": "what is in the thread?"}]


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(fake_api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.mark.parametrize(
    ("fields", "model", "says"),
    [
        ({"output_config": {"effort": "extreme"}}, MODEL, "output_config.effort"),
        ({"thinking": ADAPTIVE}, "claude-haiku-4-5", "adaptive thinking is not supported"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2_000}}, "claude-opus-4-7", "thinking.type.enabled"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4_000}}, "claude-sonnet-4-6", "greater than"),
        ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "claude-sonnet-4-6", "budget_tokens"),
        # Sent as extra_body: the SDK no longer has sampling parameters, but older clients send them.
        ({"thinking": ADAPTIVE, "extra_body": {"temperature": 0.2}}, MODEL, "temperature"),
        ({"thinking": ADAPTIVE, "extra_body": {"top_k": 5}}, MODEL, "top_k"),
        ({"thinking": ADAPTIVE, "output_config": {"effort": "xhigh"}}, "claude-sonnet-4-6", "'xhigh'"),
        ({"output_config": {"effort": "low"}}, "claude-haiku-4-5", "effort"),
        ({"thinking": {"type": "sometimes"}}, MODEL, "thinking.type"),
        ({"thinking": {"type": "adaptive", "display": "full"}}, MODEL, "display"),
    ],
)
async def test_thinking_and_effort_the_api_refuses_are_refused(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, fields: dict[str, Any], model: str, says: str
) -> None:
    """An unknown effort or thinking type, adaptive thinking on an older model, manual thinking where it is gone or
    with a budget not under max_tokens or under 1,024, sampling thinking does not allow, an effort the model lacks:
    each is a 400 invalid_request_error, as from the API."""
    fake_api.reply_text("never sent")
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(model=model, max_tokens=4_000, messages=QUESTION, **fields)
    assert says in str(caught.value)
    assert fake_api.pending == 1


async def test_thinking_is_written_only_when_asked_for(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """A scripted reply's thinking is left out without `thinking`, and signed with it; effort max is accepted."""
    fake_api.reply_text("42", thinking="The user asks about the thread.")
    fake_api.reply_text("42", thinking="The user asks about the thread.")
    plain = await claude.messages.create(model=MODEL, max_tokens=1_000, messages=QUESTION)
    thought = await claude.messages.create(
        model=MODEL, max_tokens=1_000, messages=QUESTION, thinking=ADAPTIVE, output_config={"effort": "max"}
    )
    assert [block.type for block in plain.content] == ["text"]
    assert [block.type for block in thought.content] == ["thinking", "text"]
    block = thought.content[0]
    assert block.type == "thinking" and block.thinking == "The user asks about the thread." and block.signature
    # Thinking is output: it is billed, and counts toward max_tokens.
    assert thought.usage.output_tokens > plain.usage.output_tokens


async def test_streamed_thinking_arrives_as_thinking_and_signature_deltas(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Streamed, thinking comes in thinking_delta events and its signature in one signature_delta before the block
    stops; the SDK puts together the same signed block as the unstreamed message holds."""
    fake_api.reply_text("42", thinking="Let me think about this for a while.")
    deltas: list[str] = []
    async with claude.messages.stream(model=MODEL, max_tokens=1_000, messages=QUESTION, thinking=ADAPTIVE) as stream:
        async for event in stream:
            if event.type == "content_block_delta":
                deltas.append(event.delta.type)
        message = await stream.get_final_message()
    assert deltas.count("signature_delta") == 1 and deltas.index("signature_delta") == deltas.index("text_delta") - 1
    assert set(deltas[: deltas.index("signature_delta")]) == {"thinking_delta"}
    block = message.content[0]
    assert block.type == "thinking" and block.thinking == "Let me think about this for a while." and block.signature


async def tool_round(claude: anthropic.AsyncAnthropic, fake_api: FakeAnthropic) -> list[Any]:
    """A first call that thinks and calls a tool; returns its content as the bot journals it."""
    fake_api.reply_tool_use("read_thread", {"limit": 5}, tool_id="toolu_1", thinking="I should read the thread.")
    first = await claude.messages.create(model=MODEL, max_tokens=1_000, messages=QUESTION, thinking=ADAPTIVE)
    return [block.model_dump(mode="json", exclude_none=True) for block in first.content]


def answered(content: list[Any]) -> list[Any]:
    """The conversation after the tool call, with its result."""
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "nothing yet"}
    return [*QUESTION, {"role": "assistant", "content": content}, {"role": "user", "content": [result]}]


async def test_thinking_sent_back_whole_passes(fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic) -> None:
    """The tool loop's next call, with the thinking block back unmodified before the tool result, is answered."""
    content = await tool_round(claude, fake_api)
    fake_api.reply_text("done")
    second = await claude.messages.create(model=MODEL, max_tokens=1_000, messages=answered(content), thinking=ADAPTIVE)
    assert second.content[-1].type == "text"


@pytest.mark.parametrize("change", ["tampered", "dropped", "unsigned"])
async def test_thinking_changed_or_dropped_in_a_tool_loop_is_refused(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, change: str
) -> None:
    """Thinking edited, left out, or stripped of its signature before the tool results it led to is a 400."""
    content = await tool_round(claude, fake_api)
    thinking, rest = content[0], content[1:]
    sent = {
        "tampered": [{**thinking, "thinking": "I should not read the thread."}, *rest],
        "dropped": rest,
        "unsigned": [{"type": "thinking", "thinking": thinking["thinking"]}, *rest],
    }[change]
    fake_api.reply_text("never sent")
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(model=MODEL, max_tokens=1_000, messages=answered(sent), thinking=ADAPTIVE)
    assert "thinking" in str(caught.value)


async def test_redacted_thinking_goes_back_as_it_came(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """A redacted_thinking block (opaque data) is accepted back unchanged and refused once its data is changed."""
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "read_thread", "input": {}}
    fake_api.enqueue(Reply([{"type": "redacted_thinking"}, tool_use], "tool_use"))
    first = await claude.messages.create(model=MODEL, max_tokens=1_000, messages=QUESTION, thinking=ADAPTIVE)
    content = [block.model_dump(mode="json", exclude_none=True) for block in first.content]
    assert content[0]["type"] == "redacted_thinking" and content[0]["data"]
    fake_api.reply_text("done")
    await claude.messages.create(model=MODEL, max_tokens=1_000, messages=answered(content), thinking=ADAPTIVE)
    changed = [{**content[0], "data": content[0]["data"][::-1]}, content[1]]
    with pytest.raises(anthropic.BadRequestError):
        await claude.messages.create(model=MODEL, max_tokens=1_000, messages=answered(changed), thinking=ADAPTIVE)


async def test_max_tokens_cutting_thinking_leaves_it_unsigned(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """Thinking longer than max_tokens stops there, with stop_reason max_tokens and no signature, streamed or not."""
    for _ in range(2):
        fake_api.reply_text("the answer", thinking="a long line of thought " * 40)
    whole = await claude.messages.create(model=MODEL, max_tokens=50, messages=QUESTION, thinking=ADAPTIVE)
    async with claude.messages.stream(model=MODEL, max_tokens=50, messages=QUESTION, thinking=ADAPTIVE) as stream:
        streamed = await stream.get_final_message()
    for message in (whole, streamed):
        assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 50
        assert [block.type for block in message.content] == ["thinking"]
        block = message.content[0]
        assert block.type == "thinking" and len(block.thinking) == 200 and block.signature == ""


@pytest.mark.parametrize(
    ("model", "display", "shown"), [(NEWER, None, ""), (NEWER, "summarized", "Plan."), (MODEL, "omitted", "")]
)
async def test_thinking_display_follows_the_request_else_the_model(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, model: str, display: str | None, shown: str
) -> None:
    """Thinking comes back omitted (empty text, signed all the same, billed in full) from 4.7 on unless display asks
    for summaries, and summarized before unless display omits it; an omitted block is accepted back too."""
    config: dict[str, Any] = {"type": "adaptive", **({"display": display} if display else {})}
    fake_api.reply_tool_use("read_thread", {}, tool_id="toolu_1", thinking="Plan.")
    first = await claude.messages.create(model=model, max_tokens=1_000, messages=QUESTION, thinking=config)  # type: ignore[arg-type]
    block = first.content[0]
    assert block.type == "thinking" and block.thinking == shown and block.signature
    content = [block.model_dump(mode="json", exclude_none=True) for block in first.content]
    fake_api.reply_text("done")
    await claude.messages.create(model=model, max_tokens=1_000, messages=answered(content), thinking=config)  # type: ignore[arg-type]
