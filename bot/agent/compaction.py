"""Keeping a thread's window under the budget: fold the oldest turns into the summary, in bounded passages.

It runs after an answer is posted and after a note is recorded, as journaled steps of the task. The turns that
leave the window are cut into passages, each small enough that its summary request (instructions, the summary
so far, the passage) stays within the context budget; the summary is carried from one passage to the next, and
each passage's result is journaled before the next is asked for, so a crash resumes after the last passage done
and pays for none twice. A request is therefore never refused for its size, however much piled up.

When summarizing fails the thread must still fit: the turns already summarized leave with the summary, the oldest
of the rest past the hard cap are dropped with a note in the summary, and the next fold tries again (one attempt
per task, never a loop).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.agent.context import REQUEST_OVERHEAD, Budget, TokenEstimator, fixed_cost, turns_to_evict
from bot.agent.steps import Record, SummaryPartStep, SummaryStep, parse_steps
from bot.agent.summarizer import Summarizer, render_turn
from bot.core.errors import ModelError
from bot.core.faults import CrashPoints
from store.journal import Fold
from store.models import Turn, Usage

log = logging.getLogger(__name__)

# Whatever the budget, a summary request stays this small: the summary models read 200,000 tokens at most, and a
# smaller request summarizes as well and costs less to retry.
SUMMARY_REQUEST_MAX_TOKENS = 100_000
# The summary prompt's words around the passage and the summary, in tokens.
PROMPT_FRAME = 40
# A turn longer than a passage goes on in the next one, marked so the model reads one message, not two.
CONTINUED = "(continued) "


def dropped_note(count: int) -> str:
    """The line a summary gets when turns leave the window unsummarized."""
    return f"[{count} older turns were dropped without a summary because summarizing failed.]"


@dataclass(frozen=True)
class Passage:
    """Rendered turns for one summary request, and how many turns are whole in it and the passages before it."""

    text: str
    covers: int


def _pieces(text: str, max_chars: int) -> list[str]:
    """A turn's text in pieces of at most max_chars, each after the first marked as continued."""
    if len(text) <= max_chars:
        return [text]
    step = max_chars - len(CONTINUED)
    rest = text[max_chars:]
    return [text[:max_chars], *(CONTINUED + rest[start : start + step] for start in range(0, len(rest), step))]


def passages(turns: Sequence[Turn], max_chars: int) -> list[Passage]:
    """The turns, rendered in order, packed into passages of at most max_chars characters each."""
    result: list[Passage] = []
    parts: list[str] = []
    size = covered = 0
    for index, turn in enumerate(turns):
        pieces = _pieces(render_turn(turn), max_chars)
        for number, piece in enumerate(pieces):
            if parts and size + len(piece) > max_chars:
                result.append(Passage("\n\n".join(parts), covered))
                parts, size = [], 0
            parts.append(piece)
            size += len(piece) + 2
            covered = index + 1 if number == len(pieces) - 1 else index
    if parts:
        result.append(Passage("\n\n".join(parts), covered))
    return result


class Compactor:
    """Decides whether the window must shrink, and folds or drops the oldest turns."""

    def __init__(
        self,
        summarizer: Summarizer,
        *,
        system_prompt: str,
        budget: Budget,
        estimator: TokenEstimator,
        crash: CrashPoints | None = None,
    ) -> None:
        self._summarizer = summarizer
        self._system_prompt = system_prompt
        self._budget = budget
        self._estimator = estimator
        self._crash = crash or CrashPoints()

    async def fold_if_needed(
        self,
        records: Sequence[Mapping[str, Any]],
        summary: str,
        window: list[Turn],
        record: Record,
        *,
        fixed_tokens: int,
    ) -> tuple[Fold | None, Usage]:
        """The fold to apply with the task's turns (journaled before it is returned), or None if all fits.

        `records` is the task's journal so far: a fold it already holds (whole or in part) is not asked for again.
        """
        steps = parse_steps(records)
        done = next((step for step in steps if isinstance(step, SummaryStep)), None)
        if done is not None:  # folded before a crash: apply that, do not summarize again
            return (Fold(done.evict, done.text) if done.evict else None), done.usage
        parts = [step for step in steps if isinstance(step, SummaryPartStep)]
        # What every answer request carries besides the window, the summary counted at its cap (see fixed_cost).
        fixed = fixed_cost(
            self._system_prompt, None, budget=self._budget, estimator=self._estimator, fixed_tokens=fixed_tokens
        )
        if not parts and fixed + self._estimator.turns(window) <= self._budget.total:
            return None, Usage()
        if parts:  # a fold a crash interrupted: the same turns, cut the same way, from the passage after the last
            evict, max_chars, text = parts[-1].evict, parts[-1].chunk_chars, parts[-1].text
        else:
            evict = turns_to_evict(window, room=self._budget.fold_target - fixed, estimator=self._estimator)
            max_chars, text = self._passage_chars(), summary
        usage = sum((part.usage for part in parts), Usage())
        cut = passages(window[:evict], max_chars)
        failed = False
        for index in range(len(parts), len(cut)):
            try:
                new_text, used = await self._summarizer.fold(text, cut[index].text)
            except ModelError as exc:
                failed = True
                evict, text = self._after_failure(window, cut[index - 1].covers if index else 0, text, fixed, exc)
                break
            text, usage = self._capped(new_text), usage + used
            if index < len(cut) - 1:  # the last passage's result is the summary step itself
                await record(SummaryPartStep(index, evict, max_chars, text, used).to_record())
                self._crash.reached("summary.part.journaled")
        await record(SummaryStep(text, evict, failed, usage).to_record())
        return (Fold(evict, text) if evict else None), usage

    def _passage_chars(self) -> int:
        """Characters of turns one summary request may carry: with its instructions and a summary at its cap it
        stays within the context budget (and SUMMARY_REQUEST_MAX_TOKENS)."""
        bound = min(self._budget.total, SUMMARY_REQUEST_MAX_TOKENS)
        instructions = self._estimator.text(self._summarizer.instructions)
        room = bound - REQUEST_OVERHEAD - PROMPT_FRAME - instructions - self._budget.summary_max
        return max(1_000, int(room * 4 / self._estimator.ratio))

    def _after_failure(
        self, window: list[Turn], summarized: int, summary: str, fixed: int, exc: ModelError
    ) -> tuple[int, str]:
        """What leaves the window when the model failed: the turns summarized so far, and past the hard cap the
        oldest of the rest, named in the summary as dropped unsummarized."""
        rest, room = window[summarized:], self._budget.total - fixed
        dropped = (
            turns_to_evict(rest, room=room, estimator=self._estimator) if self._estimator.turns(rest) > room else 0
        )
        log.warning(
            "summarizing failed (%s); %d turn(s) summarized, %d dropped past the hard cap", exc, summarized, dropped
        )
        if dropped:
            summary = "\n".join(part for part in (summary, dropped_note(dropped)) if part)
        return summarized + dropped, self._capped(summary)

    def _capped(self, summary: str) -> str:
        """The summary within SUMMARY_MAX_TOKENS; past it, the oldest part goes (the model was asked for less)."""
        limit = int(self._budget.summary_max * 4 / self._estimator.ratio)
        return summary if len(summary) <= limit else "…" + summary[-limit:]
