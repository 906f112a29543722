"""The Claude client counts its calls in the metrics: tokens and cost by model, retries by reason, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.agent.client import ClaudeClient
from bot.core.errors import ModelError
from tests.fakes import FakeAnthropic, Reply
from tests.unit.bot.agent.test_client import quick_client
from tests.unit.metric_values import sample

MESSAGES = [{"role": "user", "content": "hello"}]
MODEL = "claude-haiku-metrics-test"  # a model of its own: no other test counts under it


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
async def client(claude: FakeAnthropic) -> AsyncIterator[ClaudeClient]:
    async with quick_client(claude, MODEL) as made:
        yield made


def counted() -> dict[str, float]:
    """The client's counters for MODEL now."""
    tokens = {
        kind: sample("slack_agent_model_tokens_total", model=MODEL, kind=kind)
        for kind in ("input", "output", "cache_read", "cache_write")
    }
    return {
        "ok": sample("slack_agent_model_calls_total", model=MODEL, outcome="ok"),
        "error": sample("slack_agent_model_calls_total", model=MODEL, outcome="error"),
        "cost": sample("slack_agent_model_cost_usd_total", model=MODEL),
        "overloaded": sample("slack_agent_retries_total", service="anthropic", reason="OverloadedError"),
        **tokens,
    }


async def test_a_call_counts_its_tokens_and_cost(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """One answered call adds one ok call, the tokens the API reported by kind, and their estimated cost."""
    before = counted()
    usage = {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 3000}
    claude.reply_text("hi", usage={**usage, "cache_creation_input_tokens": 400})
    step = await client.step("sys", MESSAGES)
    after = counted()
    assert after["ok"] - before["ok"] == 1 and after["error"] == before["error"]
    assert {kind: after[kind] - before[kind] for kind in ("input", "output", "cache_read", "cache_write")} == {
        "input": 1000,
        "output": 200,
        "cache_read": 3000,
        "cache_write": 400,
    }
    assert after["cost"] - before["cost"] == pytest.approx(step.usage.cost_microusd / 1_000_000)
    assert after["cost"] > before["cost"]


async def test_retries_and_failures_are_counted(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """A 529 retried counts as a retry by its error's name; a call that fails for good counts as an error."""
    before = counted()
    claude.reply_error(529, "overloaded_error", "Overloaded")
    claude.reply_text("finally")
    await client.step("sys", MESSAGES)
    claude.reply_error(400, "invalid_request_error", "bad")
    with pytest.raises(ModelError):
        await client.step("sys", MESSAGES)
    after = counted()
    assert after["overloaded"] - before["overloaded"] == 1
    assert (after["ok"] - before["ok"], after["error"] - before["error"]) == (1, 1)


async def test_web_searches_are_billed_on_top_of_tokens(client: ClaudeClient, claude: FakeAnthropic) -> None:
    """A call that searched the web twice costs two searches' fee ($0.01 each) more than its tokens, as the API's
    usage block says (server_tool_use.web_search_requests)."""
    usage = {"input_tokens": 1000, "output_tokens": 200}
    claude.reply_text("plain", usage=usage)
    plain = await client.step("sys", MESSAGES)
    searched = [
        {"type": "server_tool_use", "id": f"srvtoolu_{n}", "name": "web_search", "input": {"query": "q"}}
        for n in range(2)
    ]
    claude.enqueue(Reply(content=[*searched, {"type": "text", "text": "found"}], usage=usage))
    found = await client.step("sys", MESSAGES)
    assert found.usage.cost_microusd - plain.usage.cost_microusd == 20_000
