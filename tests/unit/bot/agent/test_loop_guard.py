"""The loop's pre-call hook: each model call is held against the budgets before it is made and settled after."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.agent.loop import AgentLoop, Settle, estimated_input_tokens
from bot.agent.pricing import cost_usd
from bot.core.errors import ModelUnavailable, OverBudget
from bot.core.faults import CrashPoints
from store.models import Usage
from tests.unit.bot.agent.test_loop import BASE, THREAD, CountingTools, ScriptedClaude, step, text, tool_use


class NamedClaude(ScriptedClaude):
    """A scripted model with a name, as the real client has; None in the script fails that call for good."""

    model = "claude-haiku-test"

    async def step(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.steps and self.steps[0] is None:
            self.steps.pop(0)
            raise ModelUnavailable("overloaded for good")
        return await super().step(*args, **kwargs)


class Ledger:
    """A CallGuard that records what it is asked and told, and refuses from the call numbered `refuse_at`."""

    def __init__(self, refuse_at: int | None = None) -> None:
        self.asked: list[tuple[str, int, int]] = []
        self.settled: list[Usage | None] = []
        self.refuse_at = refuse_at

    async def before_call(self, model: str, input_tokens: int, max_tokens: int) -> Settle:
        if self.refuse_at is not None and len(self.asked) + 1 >= self.refuse_at:
            raise OverBudget("over the daily budget")
        self.asked.append((model, input_tokens, max_tokens))

        async def settle(usage: Usage | None) -> None:
            self.settled.append(usage)

        return settle


async def run(claude: ScriptedClaude, guard: Ledger) -> tuple[Any, list[dict[str, Any]]]:
    recorded: list[dict[str, Any]] = []

    async def record(entry: dict[str, Any]) -> None:
        recorded.append(entry)

    loop = AgentLoop(claude, CountingTools(), max_model_calls=5, crash=CrashPoints())  # type: ignore[arg-type]
    result = await loop.run([text("sys")], BASE, [], record, THREAD, guard=guard)
    return result, recorded


async def test_every_call_is_held_first_and_settled_with_its_real_usage() -> None:
    """Two calls (a tool round, then the answer): each asked about with the model, an input estimate and max_tokens,
    each settled with the usage it reported."""
    claude = NamedClaude(step([tool_use("t1")], "tool_use"), step([text("done")], "end_turn"))
    guard = Ledger()
    result, _ = await run(claude, guard)
    assert result.text == "done"
    assert [(model, tokens) for model, _, tokens in guard.asked] == [("claude-haiku-test", 100)] * 2
    assert all(estimate > 0 for _, estimate, _ in guard.asked)
    assert guard.asked[1][1] > guard.asked[0][1]  # the second request carries the tool round too
    assert guard.settled == [Usage(input_tokens=100, output_tokens=10, model_calls=1)] * 2


async def test_a_refused_call_is_not_made_and_the_steps_before_it_stay_journaled() -> None:
    """Over budget before the second call: the first call and its tool are journaled, the second never happens."""
    claude = NamedClaude(step([tool_use("t1")], "tool_use"), step([text("never")], "end_turn"))
    with pytest.raises(OverBudget):
        await run(claude, Ledger(refuse_at=2))
    assert len(claude.sent) == 1 and len(claude.steps) == 1


async def test_a_call_that_fails_for_good_hands_its_hold_back() -> None:
    """A call the API never answered is settled with no usage: nothing was billed."""
    guard = Ledger()
    with pytest.raises(ModelUnavailable):
        await run(NamedClaude(None), guard)  # type: ignore[arg-type]
    assert guard.settled == [None]


def test_the_input_estimate_counts_images_flat_not_by_their_base64() -> None:
    """An image's megabyte of base64 counts as a picture's tokens, not as a megabyte of text."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 1_000_000}}
    with_image = estimated_input_tokens([text("sys")], [{"role": "user", "content": [image, text("hi")]}], [])
    without = estimated_input_tokens([text("sys")], [{"role": "user", "content": [text("hi")]}], [])
    assert 1_000 < with_image - without < 2_000


class StoppedClaude(NamedClaude):
    """A model call that is stopped while it streams (a Stop, a reset, a lost lease)."""

    async def step(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise asyncio.CancelledError


async def test_a_call_stopped_mid_stream_settles_its_hold_to_its_input() -> None:
    """Cancelled mid-call, the hold is settled to the estimated input at the input price (billed), not left at
    max_tokens of output, and the cancellation goes on."""
    guard = Ledger()
    with pytest.raises(asyncio.CancelledError):
        await run(StoppedClaude(step([text("never")], "end_turn")), guard)
    [(model, estimate, _max_tokens)] = guard.asked
    [settled] = guard.settled
    assert settled is not None and settled.input_tokens == estimate and settled.output_tokens == 0
    assert settled.cost_microusd == round(
        cost_usd(model, input_tokens=estimate, output_tokens=0, cache_write=0, cache_read=0) * 1_000_000
    )
