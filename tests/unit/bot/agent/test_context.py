"""Context assembly under the budget, laid out for prompt caching."""

from __future__ import annotations

from bot.agent.context import Budget, TokenEstimator, assemble, fixed_cost, system_blocks, turns_to_evict
from store.models import Turn

BUDGET = Budget(total=4_000, summary_max=500, tool_round_reserve=0)


def window(count: int, chars: int = 800) -> list[Turn]:
    """Alternating turns of about chars/4 tokens each."""
    return [
        Turn("user", f"question {n} " + "x" * chars, user_id="U1") if n % 2 == 0 else Turn("assistant", f"answer {n}")
        for n in range(count)
    ]


def test_breakpoints_follow_the_system_prompt_the_summary_and_the_new_message_with_the_pinned_note_after() -> None:
    """The system prompt and the summary each close a cached prefix, with the 1-hour TTL by default; the pinned state
    comes after the last breakpoint."""
    context = assemble(
        system_prompt="Be brief.",
        summary="Earlier: Dana owns the rollout.",
        window=window(4, 100),
        new_turns=[Turn("user", "new question", user_id="U2")],
        pinned="[state: answering <@U2>]",
        budget=BUDGET,
        estimator=TokenEstimator(),
    )
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    assert [block.get("cache_control") for block in context.system] == [one_hour, one_hour]
    last = context.messages[-1]["content"]
    assert "new question" in last[-2]["text"] and last[-2]["cache_control"] == one_hour
    assert last[-1] == {"type": "text", "text": "[state: answering <@U2>]"}
    assert sum("cache_control" in block for message in context.messages for block in message["content"]) == 1


def test_the_5_minute_ttl_sends_breakpoints_as_before_without_a_ttl() -> None:
    """PROMPT_CACHE_TTL=5m marks the same blocks with the API's default TTL, which needs no ttl field."""
    context = assemble(
        system_prompt="Be brief.",
        summary="",
        window=window(2, 100),
        new_turns=[Turn("user", "new question", user_id="U2")],
        pinned="[state]",
        budget=BUDGET,
        estimator=TokenEstimator(),
        cache_ttl="5m",
    )
    marks = [block["cache_control"] for m in context.messages for block in m["content"] if "cache_control" in block]
    assert [block.get("cache_control") for block in context.system] == [{"type": "ephemeral"}]
    assert marks == [{"type": "ephemeral"}]


def test_oldest_turns_are_left_out_to_fit_and_the_window_starts_with_a_person() -> None:
    """A window over the budget loses its oldest turns; the new message is always kept whole."""
    huge_question = Turn("user", "y" * 8_000, user_id="U2")
    context = assemble(
        system_prompt="Be brief.",
        summary="",
        window=window(40, 1_000),
        new_turns=[huge_question],
        pinned="[state]",
        budget=BUDGET,
        estimator=TokenEstimator(),
    )
    assert context.omitted_turns > 0
    assert context.messages[0]["role"] == "user"
    assert "y" * 8_000 in context.messages[-1]["content"][0]["text"]
    new_message = 2_000
    assert context.estimated_tokens <= BUDGET.total + new_message
    assert "left out of view" in context.messages[-1]["content"][-1]["text"]


def test_the_system_prefix_is_identical_from_turn_to_turn() -> None:
    """Nothing volatile enters the cached prefix: the same summary gives byte-identical system blocks."""
    assert system_blocks("Be brief.", "S") == system_blocks("Be brief.", "S")


def test_calibration_moves_the_estimate_toward_real_counts_within_bounds() -> None:
    """Reported real token counts scale later estimates, but never beyond [0.5, 3]."""
    estimator = TokenEstimator()
    text = "z" * 4_000  # 1,000 tokens by the rule of thumb; the tokenizer says 1,500
    for _ in range(20):
        estimator.observe(estimated=estimator.text(text), actual=1_500)
    assert abs(estimator.text(text) - 1_500) <= 15
    for _ in range(50):
        estimator.observe(estimated=estimator.text(text), actual=100_000)
    assert estimator.ratio == 3.0


def test_eviction_cuts_before_a_persons_turn_and_keeps_the_latest() -> None:
    """Folding stops at a user turn, so an answer never loses the question it answered."""
    turns = window(10)
    evict = turns_to_evict(turns, room=600, estimator=TokenEstimator())
    assert 0 < evict < len(turns)
    assert turns[evict].role == "user"
    assert turns_to_evict(turns, room=1_000_000, estimator=TokenEstimator()) == 0


def test_folding_counts_the_summary_at_its_cap_and_a_request_counts_it_as_sent() -> None:
    """Folding counts the request's fixed cost with an empty summary plus the cap; a real summary costs less."""
    estimator = TokenEstimator()

    def cost(summary: str | None) -> int:
        return fixed_cost("Be brief.", summary, budget=BUDGET, estimator=estimator, fixed_tokens=70)

    assert cost(None) == cost("") + BUDGET.summary_max
    assert cost("") < cost("Earlier: Dana owns the rollout.") < cost(None)
