"""Keeping a thread's window under the budget: fold the oldest turns into the summary, in bounded passages.

It runs after an answer is posted and after a note is recorded, as journaled steps of the task. The turns that
leave the window are cut into passages, each small enough that its summary request (instructions, the summary
so far, the passage) stays within the context budget; the summary is carried from one passage to the next, and
each passage's result is journaled before the next is asked for, so a crash resumes after the last passage done
and pays for none twice. A request is therefore never refused for its size, however much piled up.

A resumed task rebuilds its window (from Redis, and from Slack when it joined the thread late), and the rebuilt one
may hold other turns: a read of earlier messages that failed this time, say. So each journaled step carries a
fingerprint of the turns it covers, and is used only if the window's turns are those turns still; otherwise the
fold starts again and the stale steps are ignored. Display names are not in the fingerprint (a lookup that fails on
the retry changes them, not what was said), so a resume goes on from where the summary got to in the turns' text,
not from a passage cut by rendered lengths.

When summarizing fails nothing is dropped: the turns already summarized leave with the summary, the rest stay in
the window, which may then be over the budget (a request leaves out of view what does not fit, see
context.assemble) until the next fold that works takes the backlog in passages (one attempt per task, never a
loop). Only past a hard storage ceiling are the oldest turns dropped, with a note in the summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
# While summarizing fails, a thread's window may grow past the budget (requests leave out of view what does not
# fit) so that nothing people wrote is lost before the summarizer is back. Past this many budgets' worth of turns
# the oldest are dropped all the same, with a note in the summary: an outage must not grow a busy thread's stored
# turns, and every later fold's backlog, without bound.
STORAGE_CEILING_BUDGETS = 3
DROPPED_NOTE = re.compile(r"\[(\d+) older turns were dropped without a summary because summarizing failed\.\]\Z")


def dropped_note(count: int) -> str:
    """The line a summary gets when turns leave the window unsummarized."""
    return f"[{count} older turns were dropped without a summary because summarizing failed.]"


def with_dropped(summary: str, count: int) -> str:
    """The summary with `count` more turns named as dropped: a note it ends with already is counted up, so that
    drops during a long outage do not push what the summary knows out past its cap, one line each."""
    lines = summary.split("\n")
    earlier = DROPPED_NOTE.match(lines[-1])
    if earlier:
        lines[-1] = dropped_note(int(earlier.group(1)) + count)
        return "\n".join(lines)
    return "\n".join(part for part in (summary, dropped_note(count)) if part)


def fingerprint(turns: Sequence[Turn]) -> str:
    """What identifies the turns a fold covers: the role, ts and text of each, in order (not display names, which a
    failed lookup changes without changing what was said)."""
    digest = hashlib.sha256()
    for turn in turns:
        digest.update(json.dumps([turn.role, turn.ts, turn.text]).encode())
        digest.update(b"\n")  # json.dumps escapes newlines: one line a turn is unambiguous
    return digest.hexdigest()[:32]


def covers_same_turns(step: SummaryPartStep | SummaryStep, window: Sequence[Turn]) -> bool:
    """Whether a journaled fold step was made for the oldest turns of this window (a fold leaves at least one)."""
    if step.fingerprint is None or len(window) <= step.evict:
        return False
    return fingerprint(window[: step.evict]) == step.fingerprint


@dataclass(frozen=True)
class Passage:
    """Rendered turns for one summary request, and how far they and the passages before it go: `covers` turns
    whole, and the first `offset` characters of the next one's text."""

    text: str
    covers: int
    offset: int = 0


def _pieces(turn: Turn, max_chars: int, offset: int) -> list[tuple[str, int]]:
    """A turn rendered in pieces of at most max_chars from `offset` characters into its text, each piece with the
    offset it ends at; every piece but the turn's first is marked as continued."""
    text, pieces = turn.text, []
    if offset == 0:
        # The speaker's label, only in the turn's first piece (and never more than half of it: a name comes from
        # Slack, and a passage must stay within max_chars whatever it is).
        header = render_turn(replace(turn, text=""))[: max_chars // 2]
        offset = min(max_chars - len(header), len(text))
        pieces.append((header + text[:offset], offset))
    step = max_chars - len(CONTINUED)
    for start in range(offset, len(text), step):
        pieces.append((CONTINUED + text[start : start + step], min(start + step, len(text))))
    return pieces


def passages(turns: Sequence[Turn], max_chars: int, *, offset: int = 0) -> list[Passage]:
    """The turns, rendered in order, packed into passages of at most max_chars characters each; the first turn
    from `offset` characters into its text (the summary already holds what comes before)."""
    result: list[Passage] = []
    parts: list[str] = []
    size = covers = into = 0
    for index, turn in enumerate(turns):
        for piece, end in _pieces(turn, max_chars, offset if index == 0 else 0):
            if parts and size + len(piece) > max_chars:
                result.append(Passage("\n\n".join(parts), covers, into))
                parts, size = [], 0
            parts.append(piece)
            size += len(piece) + 2
            covers, into = (index + 1, 0) if end == len(turn.text) else (index, end)
    if parts:
        result.append(Passage("\n\n".join(parts), covers, into))
    return result


@dataclass(frozen=True)
class Progress:
    """Where a fold is: the turns it takes and how they are cut, the summary so far and how far it goes."""

    evict: int
    chunk_chars: int
    text: str
    covers: int = 0
    offset: int = 0
    index: int = 0  # the number of the next passage


def spent(steps: Sequence[SummaryPartStep | SummaryStep]) -> Usage:
    """What the journaled summary calls cost: a summary step counts its fold's calls and all before them."""
    total = Usage()
    for step in steps:
        total = step.usage if isinstance(step, SummaryStep) else total + step.usage
    return total


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

        `records` is the task's journal so far: a fold it already holds (whole or in part) for these very turns is
        not asked for again; one made for other turns is ignored, and the fold starts again.
        """
        steps = [step for step in parse_steps(records) if isinstance(step, SummaryPartStep | SummaryStep)]
        last = steps[-1] if steps else None
        if last is not None and not covers_same_turns(last, window):
            log.info("the journaled fold was made for other turns than the window holds now: it is ignored")
            last = None
        if isinstance(last, SummaryStep):  # folded before a crash: apply that, do not summarize again
            return (Fold(last.evict, last.text) if last.evict else None), last.usage
        # What every answer request carries besides the window, the summary counted at its cap (see fixed_cost).
        fixed = fixed_cost(
            self._system_prompt, None, budget=self._budget, estimator=self._estimator, fixed_tokens=fixed_tokens
        )
        if last is not None:  # a fold a crash interrupted: the same turns, cut the same way, from where it got to
            progress = Progress(last.evict, last.chunk_chars, last.text, last.covers, last.offset, last.index + 1)
        elif fixed + self._estimator.turns(window) <= self._budget.total:
            return None, spent(steps)
        else:
            evict = turns_to_evict(window, room=self._budget.fold_target - fixed, estimator=self._estimator)
            progress = Progress(evict, self._passage_chars(), summary)
        evict, text, failed, usage = await self._summarize(progress, window, record, spent(steps))
        await record(SummaryStep(text, evict, failed, usage, fingerprint(window[:evict])).to_record())
        return (Fold(evict, text) if evict else None), usage

    async def _summarize(
        self, progress: Progress, window: list[Turn], record: Record, usage: Usage
    ) -> tuple[int, str, bool, Usage]:
        """The fold's passages from `progress` on, each journaled but the last: how many turns leave the window, the
        summary, whether summarizing failed, and the fold's usage (`usage` is what it cost before)."""
        taken = fingerprint(window[: progress.evict])
        cut = passages(window[progress.covers : progress.evict], progress.chunk_chars, offset=progress.offset)
        text, covers = progress.text, progress.covers
        for number, passage in enumerate(cut):
            try:
                new_text, used = await self._summarizer.fold(text, passage.text)
            except ModelError as exc:
                evict, text = self._after_failure(window, covers, text, exc)
                return evict, text, True, usage
            text, usage = self._capped(new_text), usage + used
            covers = progress.covers + passage.covers
            if number < len(cut) - 1:  # the last passage's result is the summary step itself
                offset = passage.offset
                part = SummaryPartStep(
                    progress.index + number, progress.evict, progress.chunk_chars, text, used, covers, offset, taken
                )
                await record(part.to_record())
                self._crash.reached("summary.part.journaled")
        return progress.evict, text, False, usage

    def _passage_chars(self) -> int:
        """Characters of turns one summary request may carry: with its instructions and a summary at its cap it
        stays within the context budget (and SUMMARY_REQUEST_MAX_TOKENS)."""
        bound = min(self._budget.total, SUMMARY_REQUEST_MAX_TOKENS)
        instructions = self._estimator.text(self._summarizer.instructions)
        room = bound - REQUEST_OVERHEAD - PROMPT_FRAME - instructions - self._budget.summary_max
        return max(1_000, int(room * 4 / self._estimator.ratio))

    def _after_failure(self, window: list[Turn], summarized: int, summary: str, exc: ModelError) -> tuple[int, str]:
        """What leaves the window when the model failed: the turns summarized so far, and, only if the rest is past
        the storage ceiling, the oldest of it, named in the summary as dropped unsummarized."""
        rest, ceiling = window[summarized:], STORAGE_CEILING_BUDGETS * self._budget.total
        over = self._estimator.turns(rest) > ceiling
        dropped = turns_to_evict(rest, room=ceiling, estimator=self._estimator) if over else 0
        log.warning(
            "summarizing failed (%s); %d turn(s) summarized, %d dropped past the storage ceiling",
            exc,
            summarized,
            dropped,
        )
        if dropped:
            summary = with_dropped(summary, dropped)
        return summarized + dropped, self._capped(summary)

    def _capped(self, summary: str) -> str:
        """The summary within SUMMARY_MAX_TOKENS; past it, the oldest part goes (the model was asked for less)."""
        limit = int(self._budget.summary_max * 4 / self._estimator.ratio)
        return summary if len(summary) <= limit else "…" + summary[-limit:]
