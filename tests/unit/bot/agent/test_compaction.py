"""Folding the window's oldest turns into the summary in passages, each one summary request within the budget."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.agent.compaction import CONTINUED, STORAGE_CEILING_BUDGETS, Compactor, dropped_note, passages
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


def named(turns: list[Turn], name: str | None) -> list[Turn]:
    """The turns with every person's display name set to `name` (None: the name lookup failed)."""
    return [replace(turn, user_name=name) if turn.role == "user" else turn for turn in turns]


def texts_shown(shown: list[str]) -> str:
    """The turns' texts the passages carried, in order, without speaker labels and continuation marks."""
    fragments = [part for passage in shown for part in passage.split("\n\n")]
    return "".join(
        part.removeprefix(CONTINUED) if part.startswith(CONTINUED) else part.split(": ", 1)[1] for part in fragments
    )


async def crashed_fold(turns: list[Turn], passages_done: int = 2) -> tuple[Journal, ScriptedSummarizer]:
    """The journal and summarizer of a fold of `turns` killed after its first `passages_done` passages."""
    journal, summarizer = Journal(crash_after=passages_done), ScriptedSummarizer()
    compactor = Compactor(summarizer, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    with pytest.raises(KeyboardInterrupt):
        await compactor.fold_if_needed([], "", turns, journal.record, fixed_tokens=0)
    return journal, summarizer


async def test_a_fold_resumed_with_a_shorter_window_does_not_evict_its_journaled_count() -> None:
    """Killed after two passages of a late join's earlier messages, retried with the earlier read failing (only the
    question and answer in the window): the journaled passages are not applied and the question stays."""
    earlier = window(20)
    question, answer = Turn("user", "QUESTION: what did we decide?", user_id="U2"), Turn("assistant", "We chose X.")
    journal, _ = await crashed_fold([*earlier, question, answer])
    resumed = ScriptedSummarizer()
    compactor = Compactor(resumed, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    fold, usage = await compactor.fold_if_needed(
        journal.steps, "", [question, answer], Journal().record, fixed_tokens=0
    )
    assert fold is None and resumed.shown == []
    assert usage.model_calls == 2  # the passages paid for before the crash are still counted


async def test_a_fold_resumed_with_other_turns_starts_again() -> None:
    """Resumed against a window whose oldest turns are not the ones journaled, the fold starts again from the
    stored summary: every turn leaving the window is summarized, and nothing of the stale passages is kept."""
    turns = window(24)
    journal, _ = await crashed_fold(turns)
    resumed = ScriptedSummarizer()
    compactor = Compactor(resumed, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    fold, _ = await compactor.fold_if_needed(journal.steps, "stored", turns[3:], Journal().record, fixed_tokens=0)
    assert fold is not None and resumed.shown[0][0] == "stored"
    assert texts_shown([passage for _, passage in resumed.shown]) == "".join(t.text for t in turns[3 : 3 + fold.evict])
    assert fold.summary == "stored" + "".join(f"[passage {n}]" for n in range(1, len(resumed.shown) + 1))


async def test_a_fold_resumed_with_names_missing_summarizes_every_turn_once() -> None:
    """Display names lost on the retry (a failed lookup) change where passages are cut, not what is summarized:
    the resumed fold goes on from where the summary got to, so every evicted character is shown once, in order."""
    turns = named([*window(16, chars=1_500), Turn("user", "z" * 30_000, user_id="U1"), *window(10)], "Alexandra Long")
    journal, first = await crashed_fold(turns, passages_done=3)
    resumed = ScriptedSummarizer()
    compactor = Compactor(resumed, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    fold, _ = await compactor.fold_if_needed(journal.steps, "", named(turns, None), Journal().record, fixed_tokens=0)
    assert fold is not None and resumed.shown[0][0] == "[passage 1][passage 2][passage 3]"
    shown = [passage for _, passage in first.shown + resumed.shown]
    assert texts_shown(shown) == "".join(turn.text for turn in turns[: fold.evict])


async def test_a_finished_fold_is_applied_only_to_the_turns_it_was_made_for() -> None:
    """A journaled summary step is applied on resume when the window's turns are the same (names aside), and
    ignored when they are not; one journaled before fingerprints is ignored too (the fold starts again)."""
    turns, journal = named(window(20), "Ann"), Journal()
    compactor = Compactor(ScriptedSummarizer(), system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    done, _ = await compactor.fold_if_needed([], "", turns, journal.record, fixed_tokens=0)
    again = ScriptedSummarizer()
    compactor = Compactor(again, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    same, _ = await compactor.fold_if_needed(journal.steps, "", named(turns, None), Journal().record, fixed_tokens=0)
    assert same == done and again.shown == []
    other, _ = await compactor.fold_if_needed(journal.steps, "", turns[-2:], Journal().record, fixed_tokens=0)
    assert other is None and again.shown == []
    legacy = [{key: value for key, value in step.items() if key != "fingerprint"} for step in journal.steps]
    refolded, _ = await compactor.fold_if_needed(legacy, "", turns, Journal().record, fixed_tokens=0)
    assert refolded is not None and len(again.shown) >= 1 and again.shown[0][0] == ""


def notes(count: int, start: int = 0) -> list[Turn]:
    """People's notes of about 1,000 tokens each, every one with a fact of its own."""
    return [
        Turn("user", f"FACT {n}: the deploy key is K-{n:04d}. " + "x" * 3_900, user_id="U1")
        for n in range(start, count)
    ]


async def test_a_failing_summarizer_drops_nothing_below_the_storage_ceiling() -> None:
    """With the summarizer down, a window over the budget (but under the ceiling) loses no turn and gets no note:
    requests leave out of view what does not fit until a fold works."""
    journal, down = Journal(), ScriptedSummarizer(fail_at=frozenset(range(10)))
    compactor = Compactor(down, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    turns = notes(10)
    assert TokenEstimator().turns(turns) > 2 * BUDGET.total
    fold, _ = await compactor.fold_if_needed([], "summary so far", turns, journal.record, fixed_tokens=0)
    assert fold is None and len(down.shown) == 1
    assert journal.steps[-1]["failed"] is True and journal.steps[-1]["evict"] == 0


async def test_past_the_storage_ceiling_the_oldest_turns_are_dropped_and_counted_in_one_note() -> None:
    """Past STORAGE_CEILING_BUDGETS budgets of turns the oldest go, down to the ceiling, named in the summary; a
    second drop counts up that note instead of adding a line."""
    down = ScriptedSummarizer(fail_at=frozenset(range(10)))
    compactor = Compactor(down, system_prompt="Be brief.", budget=BUDGET, estimator=TokenEstimator())
    ceiling, estimator = STORAGE_CEILING_BUDGETS * BUDGET.total, TokenEstimator()
    turns = notes(14)
    fold, _ = await compactor.fold_if_needed([], "summary so far", turns, Journal().record, fixed_tokens=0)
    assert fold is not None and fold.summary == "summary so far\n" + dropped_note(fold.evict)
    assert estimator.turns(turns[fold.evict :]) <= ceiling < estimator.turns(turns[fold.evict - 1 :])
    more = [*turns[fold.evict :], *notes(16, start=14)]
    again, _ = await compactor.fold_if_needed([], fold.summary, more, Journal().record, fixed_tokens=0)
    assert again is not None and again.summary == "summary so far\n" + dropped_note(fold.evict + again.evict)


def test_a_passage_stays_within_its_size_whatever_the_speaker_is_called() -> None:
    """A display name longer than a passage is cut in the label, so the passage still fits and the text is whole."""
    turn = Turn("user", "word " * 2_000, user_id="U1", user_name="N" * 5_000)
    cut = passages([turn], 4_000)
    assert all(len(passage.text) <= 4_000 for passage in cut)
    fragments = [part.removeprefix(CONTINUED) for passage in cut for part in passage.text.split("\n\n")]
    assert "".join(fragments) == "N" * 2_000 + turn.text
