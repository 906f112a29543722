"""Folding the window's oldest turns into the summary in passages, each one summary request within the budget."""

from __future__ import annotations

from typing import Any

import pytest

from bot.agent.compaction import Compactor, passages
from bot.agent.context import Budget, TokenEstimator
from bot.agent.steps import SummaryPartStep
from bot.agent.summarizer import Summarizer, render_turn
from bot.core.errors import ModelUnavailable
from store.models import Turn, Usage

PART = SummaryPartStep.kind

BUDGET = Budget(total=4_000, summary_max=500, tool_round_reserve=0)


class ScriptedSummarizer(Summarizer):
    """Summarizes by naming each passage it was shown; fails on the calls whose index is in `fail_at`."""

    def __init__(self, fail_at: frozenset[int] = frozenset()) -> None:  # no model client: nothing is sent
        self._max_tokens = BUDGET.summary_max
        self._fail_at = fail_at
        self.shown: list[tuple[str, str]] = []

    async def fold(self, previous: str, passage: str) -> tuple[str, Usage]:
        self.shown.append((previous, passage))
        if len(self.shown) - 1 in self._fail_at:
            raise ModelUnavailable("summarizer down")
        return f"{previous}[passage {len(self.shown)}]", Usage(model_calls=1)


def window(count: int, chars: int = 2_000) -> list[Turn]:
    """Alternating turns of about chars/4 tokens each."""
    return [
        Turn("user", f"question {n} " + "x" * chars, user_id="U1")
        if n % 2 == 0
        else Turn("assistant", f"answer {n} " + "y" * chars)
        for n in range(count)
    ]


class Journal:
    """The steps recorded, and a crash (an exception) after the first `crash_after` passages if asked."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.steps: list[dict[str, Any]] = []
        self._crash_after = crash_after

    async def record(self, step: dict[str, Any]) -> None:
        self.steps.append(step)
        if step["kind"] == PART and len(self.steps) == self._crash_after:
            raise KeyboardInterrupt("crash")


def test_passages_keep_every_character_in_order_within_their_size() -> None:
    """Turns are packed whole where they fit; a longer one goes on, marked, in the next passages."""
    turns = [Turn("user", "a" * size, user_id="U1") for size in (100, 5_000, 300, 12_000, 50)]
    cut = passages(turns, 4_000)
    assert all(len(passage.text) <= 4_000 for passage in cut)
    text = "".join(passage.text for passage in cut).replace("(continued) ", "").replace("\n\n", "")
    assert text == "".join(render_turn(turn) for turn in turns)
    assert [passage.covers for passage in cut] == sorted(passage.covers for passage in cut)
    assert cut[-1].covers == len(turns) and cut[0].covers == 1  # the 5,000-character turn is not whole in it


async def test_a_big_fold_chains_the_summary_through_bounded_requests() -> None:
    """Each passage's request (instructions, summary so far, passage) fits the budget; each but the last is
    journaled as it is done, and the summary is carried from one to the next."""
    summarizer, journal, estimator = ScriptedSummarizer(), Journal(), TokenEstimator()
    compactor = Compactor(summarizer, system_prompt="Be brief.", budget=BUDGET, estimator=estimator)
    fold, usage = await compactor.fold_if_needed([], "old", window(20), journal.record, fixed_tokens=0)
    assert fold is not None and fold.evict >= 15 and len(summarizer.shown) >= 3
    for previous, passage in summarizer.shown:
        request = summarizer.instructions + summarizer.prompt(previous, passage)
        assert estimator.text(request) <= BUDGET.total
    assert fold.summary == "old" + "".join(f"[passage {n}]" for n in range(1, len(summarizer.shown) + 1))
    assert [step["kind"] for step in journal.steps] == [PART] * (len(summarizer.shown) - 1) + ["summary"]
    assert usage.model_calls == len(summarizer.shown)


async def test_a_fold_interrupted_between_passages_resumes_after_the_last_one_done() -> None:
    """Restarted with the journal of two passages, the fold asks only for the rest and ends where it would have."""
    turns, compactor_args = window(20), {"system_prompt": "Be brief.", "budget": BUDGET}
    whole = ScriptedSummarizer()
    expected, _ = await Compactor(whole, estimator=TokenEstimator(), **compactor_args).fold_if_needed(
        [], "", turns, Journal().record, fixed_tokens=0
    )
    crashed = Journal(crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        await Compactor(ScriptedSummarizer(), estimator=TokenEstimator(), **compactor_args).fold_if_needed(
            [], "", turns, crashed.record, fixed_tokens=0
        )
    resumed = ScriptedSummarizer()
    # Another process: its estimate may differ, but the journal says how the turns were cut.
    compactor = Compactor(resumed, estimator=TokenEstimator(ratio=1.3), **compactor_args)
    fold, usage = await compactor.fold_if_needed(crashed.steps, "", turns, Journal().record, fixed_tokens=0)
    assert [passage for _, passage in resumed.shown] == [passage for _, passage in whole.shown[2:]]
    assert resumed.shown[0][0] == "[passage 1][passage 2]"
    assert fold is not None and expected is not None and fold.evict == expected.evict
    assert usage.model_calls == len(whole.shown)


async def test_a_model_failure_midway_keeps_what_was_summarized() -> None:
    """When the second passage fails, the turns the first covered leave with its summary; nothing is dropped."""
    summarizer, journal = ScriptedSummarizer(fail_at=frozenset({1})), Journal()
    compactor = Compactor(summarizer, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    turns = window(12, chars=1_800)
    fold, _ = await compactor.fold_if_needed([], "", turns, journal.record, fixed_tokens=0)
    first_passage = summarizer.shown[0][1]
    covered = sum(render_turn(turn) in first_passage for turn in turns)
    assert len(summarizer.shown) == 2 and covered > 0
    assert fold is not None and fold.summary == "[passage 1]" and fold.evict == covered
    assert journal.steps[-1]["failed"] is True
