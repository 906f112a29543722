"""Cost accounting of cache writes: 1-hour writes at twice the input price, 5-minute ones at 1.25 times."""

from __future__ import annotations

import json

import pytest
from anthropic.types import Usage as ApiUsage

from bot.agent.client import usage_of
from bot.agent.pricing import cost_usd
from bot.agent.steps import ModelStep, parse_step
from store.models import Usage

SONNET = "claude-sonnet-5-5"  # $3 a million input tokens, $15 output


def test_each_kind_of_input_token_has_its_own_price() -> None:
    """A million tokens cost $3 uncached, $3.75 written to the 5-minute cache, $6 to the 1-hour one, $0.30 read."""
    zero = {"input_tokens": 0, "output_tokens": 0, "cache_write": 0, "cache_read": 0}
    assert cost_usd(SONNET, **{**zero, "input_tokens": 1_000_000}) == pytest.approx(3.0)
    assert cost_usd(SONNET, **{**zero, "cache_write": 1_000_000}) == pytest.approx(3.75)
    assert cost_usd(SONNET, **zero, cache_write_1h=1_000_000) == pytest.approx(6.0)
    assert cost_usd(SONNET, **{**zero, "cache_read": 1_000_000}) == pytest.approx(0.30)


def test_usage_with_the_ttl_breakdown_prices_each_write_at_its_rate() -> None:
    """The API's cache_creation breakdown splits the writes: 1-hour ones are recorded apart and priced at 2x."""
    api = ApiUsage.model_validate(
        {
            "input_tokens": 100,
            "output_tokens": 10,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 3_000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 2_000},
        }
    )
    usage = usage_of(SONNET, api)
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (3_000, 2_000)
    # (100 + 1,000 x 1.25 + 2,000 x 2) x $3 + 10 x $15, a million tokens each.
    assert usage.cost_microusd == 3 * (100 + 1_250 + 4_000) + 150


def test_usage_without_the_breakdown_takes_every_write_for_a_5_minute_one() -> None:
    """A usage block with no cache_creation (a proxy, an older API) is priced as before: all writes at 1.25x."""
    api = ApiUsage.model_validate({"input_tokens": 100, "output_tokens": 10, "cache_creation_input_tokens": 2_000})
    usage = usage_of(SONNET, api)
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (2_000, 0)
    assert usage.cost_microusd == 3 * (100 + 2_500) + 150


def test_records_written_before_1_hour_writes_were_counted_still_read() -> None:
    """A thread's counters and a journal step without cache_write_1h_tokens read it as zero, and sums keep it."""
    old = Usage.from_fields({"input_tokens": "5", "cache_write_tokens": "40", "cost_microusd": "9"})
    assert old.cache_write_1h_tokens == 0
    assert (old + Usage(cache_write_tokens=10, cache_write_1h_tokens=10)).cache_write_1h_tokens == 10
    record = json.loads(
        '{"kind":"model","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",'
        '"usage":{"input_tokens":1,"output_tokens":2,"cache_read_tokens":0,"cache_write_tokens":40,'
        '"model_calls":1,"cost_microusd":3}}'
    )
    step = parse_step(record)
    assert isinstance(step, ModelStep) and step.usage == Usage(1, 2, 1, 0, 40, 3)


def test_counters_name_1_hour_writes_only_when_there_are_some() -> None:
    """Without 1-hour writes a usage is written as before the field existed, so the previous release reads it."""
    assert "cache_write_1h_tokens" not in Usage(cache_write_tokens=5).counters()
    assert Usage(cache_write_tokens=5, cache_write_1h_tokens=5).counters()["cache_write_1h_tokens"] == 5
