"""Keeping a thread's window under the budget after each answer: fold the oldest turns into the summary.

It runs after the reply is posted, as a journaled step of the task, so a crash after it does not pay for it
twice. When summarizing fails the thread must still fit: the oldest turns past the hard cap are dropped with a
note in the summary, and the next answer tries summarizing again (one attempt per answer, never a loop).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.context import REQUEST_OVERHEAD, Budget, TokenEstimator, system_blocks, turns_to_evict
from bot.errors import ModelError
from bot.summarizer import Summarizer
from store.journal import Fold
from store.models import Turn, Usage

log = logging.getLogger(__name__)

Record = Callable[[dict[str, Any]], Awaitable[None]]


def dropped_note(count: int) -> str:
    """The line a summary gets when turns leave the window unsummarized."""
    return f"[{count} older turns were dropped without a summary because summarizing failed.]"


class Compactor:
    """Decides whether the window must shrink, and folds or drops the oldest turns."""

    def __init__(
        self, summarizer: Summarizer, *, system_prompt: str, budget: Budget, estimator: TokenEstimator
    ) -> None:
        self._summarizer = summarizer
        self._system_prompt = system_prompt
        self._budget = budget
        self._estimator = estimator

    async def fold_if_needed(
        self, steps: list[dict[str, Any]], summary: str, window: list[Turn], record: Record, *, fixed_tokens: int
    ) -> tuple[Fold | None, Usage]:
        """The fold to apply with the task's turns (journaled before it is returned), or None if all fits."""
        done = next((step for step in steps if step["kind"] == "summary"), None)
        if done is not None:  # folded before a crash: apply that, do not summarize again
            return (Fold(done["evict"], done["text"]) if done["evict"] else None), Usage(**done["usage"])
        # What every request carries besides the window, with the summary counted at its cap.
        fixed = (
            REQUEST_OVERHEAD
            + fixed_tokens
            + self._estimator.system(system_blocks(self._system_prompt, ""))
            + self._budget.summary_max
            + self._budget.pinned_reserve
            + self._budget.tool_round_reserve
        )
        if fixed + self._estimator.turns(window) <= self._budget.total:
            return None, Usage()
        evict = turns_to_evict(window, room=self._budget.fold_target - fixed, estimator=self._estimator)
        failed = False
        try:
            text, usage = await self._summarizer.fold(summary, window[:evict])
        except ModelError as exc:
            failed, usage = True, Usage()
            evict = turns_to_evict(window, room=self._budget.total - fixed, estimator=self._estimator)
            log.warning("summarizing failed (%s); dropping %d turn(s) past the hard cap", exc, evict)
            text = "\n".join(part for part in (summary, dropped_note(evict)) if part) if evict else summary
        text = self._capped(text)
        step = {"kind": "summary", "text": text, "evict": evict, "failed": failed, "usage": usage.counters()}
        await record(step)
        return (Fold(evict, text) if evict else None), usage

    def _capped(self, summary: str) -> str:
        """The summary within SUMMARY_MAX_TOKENS; past it, the oldest part goes (the model was asked for less)."""
        limit = int(self._budget.summary_max * 4 / self._estimator.ratio)
        return summary if len(summary) <= limit else "…" + summary[-limit:]
