"""The Anthropic fake's prompt caching as the SDK sees it: usage split by TTL, and the breakpoints the API refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from tests.fakes import FakeAnthropic

MODEL = "claude-test-model"
ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}
FIVE_MINUTES = {"type": "ephemeral"}


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def claude(fake_api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="test", max_retries=0) as client:
        yield client


def system(*marks: dict[str, str] | None) -> list[Any]:
    """System blocks of 1,200 tokens each (past the 1,024 a prefix needs to be cached), with the given breakpoints."""
    return [
        {"type": "text", "text": f"{n} " + "s" * 4798, **({"cache_control": mark} if mark else {})}
        for n, mark in enumerate(marks)
    ]


ASKED: list[Any] = [{"role": "user", "content": "hello"}]


async def test_the_usage_splits_cache_writes_by_ttl_in_both_forms(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """A 1-hour breakpoint before a 5-minute one: the SDK's usage.cache_creation says which tokens went to which
    cache, in a plain response and (from message_start) in a streamed one."""
    blocks = system(ONE_HOUR, None, FIVE_MINUTES)
    plain = await claude.messages.create(model=MODEL, max_tokens=10, system=blocks, messages=ASKED)
    assert plain.usage.cache_creation is not None
    split = plain.usage.cache_creation
    assert (split.ephemeral_1h_input_tokens, split.ephemeral_5m_input_tokens) == (1200, 2400)
    assert plain.usage.cache_creation_input_tokens == 3600
    fake_api.prompt_cache.advance(600)  # the 5-minute part has expired, the 1-hour part not
    async with claude.messages.stream(model=MODEL, max_tokens=10, system=blocks, messages=ASKED) as stream:
        final = await stream.get_final_message()
    assert final.usage.cache_creation is not None
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation.ephemeral_5m_input_tokens) == (1200, 2400)


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (
            system(FIVE_MINUTES, ONE_HOUR),
            "system.1.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m'",
        ),
        (system(ONE_HOUR, {"type": "ephemeral", "ttl": "10m"}), "system.1.cache_control.ephemeral.ttl: Input should"),
        (system(*[ONE_HOUR] * 5), "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ],
    ids=["1h after 5m", "unknown ttl", "five breakpoints"],
)
async def test_breakpoints_the_api_refuses_get_its_400(
    claude: anthropic.AsyncAnthropic, blocks: list[Any], message: str
) -> None:
    """A 1-hour breakpoint after a 5-minute one (a breakpoint without ttl is a 5-minute one), a ttl other than 5m
    or 1h, and more than four breakpoints are refused with invalid_request_error, as the API refuses them."""
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude.messages.create(model=MODEL, max_tokens=10, system=blocks, messages=ASKED)
    assert message in str(refused.value)


async def test_a_scripted_write_count_without_its_split_reads_as_5_minute_writes(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic
) -> None:
    """A test that scripts cache_creation_input_tokens alone gets no split the fake made up for other figures."""
    fake_api.reply_text("hi", usage={"cache_creation_input_tokens": 400})
    message = await claude.messages.create(model=MODEL, max_tokens=10, system=system(ONE_HOUR), messages=ASKED)
    assert (message.usage.cache_creation_input_tokens, message.usage.cache_creation) == (400, None)
