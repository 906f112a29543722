"""Fitting a thread into the context budget: what an answer sends to Claude, and folding a window that is over.

Both go by the same estimator (calibrated by the token counts the API reports) and count the same fixed cost
every request carries, the tool definitions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from bot.agent.compaction import Compactor
from bot.agent.context import Budget, CacheTtl, Context, TokenEstimator, assemble
from bot.agent.loop import AgentLoop
from bot.agent.messages import speaker_label
from bot.agent.setup import AgentSetup
from bot.core.errors import ModelError
from bot.core.faults import CrashPoints
from bot.tasks.attachments import IMAGE_TOKENS
from store.journal import Fold, TaskJournal
from store.models import Task, Turn, Usage
from store.tasks import ThreadLease

log = logging.getLogger(__name__)

# Within this share of the budget an estimate is not trusted: the count_tokens endpoint gives the exact figure.
NEAR_EDGE = 0.1


@dataclass(frozen=True)
class ContextSettings:
    """How answers' contexts are assembled."""

    system_prompt: str
    budget: Budget
    estimator: TokenEstimator
    cache_ttl: CacheTtl = "1h"  # PROMPT_CACHE_TTL


def with_images(context: Context, images: list[dict[str, Any]]) -> Context:
    """The context with the new message's images at the start of its (last) user message."""
    messages = [*context.messages[:-1], {**context.messages[-1]}]
    messages[-1]["content"] = [*images, *messages[-1]["content"]]
    estimated = context.estimated_tokens + IMAGE_TOKENS * len(images)
    return Context(context.system, messages, estimated, context.omitted_turns)


class ContextFitter:
    """Assembles an answer's context within the budget, and folds a thread's window when it is over it."""

    def __init__(
        self,
        settings: ContextSettings,
        *,
        loop: AgentLoop,
        compactor: Compactor,
        journal: TaskJournal,
        crash: CrashPoints,
    ) -> None:
        self._settings = settings
        self._loop = loop
        self._compactor = compactor
        self._journal = journal
        self._crash = crash

    async def fitted_context(
        self, summary: str, window: list[Turn], question: Turn, *, resumed: bool, setup: AgentSetup
    ) -> Context:
        """The context of a task with this setup; near the budget's edge an exact count from the API recalibrates
        the estimate first."""
        context = self._context(summary, window, question, resumed=resumed, setup=setup)
        budget = self._settings.budget.total
        if abs(context.estimated_tokens - budget) > budget * NEAR_EDGE:
            return context
        try:
            exact = await self._loop.count_tokens(context.system, context.messages, setup)
        except ModelError as exc:
            log.info("token count unavailable (%s); going by the estimate", exc)
            return context
        self._settings.estimator.observe(context.estimated_tokens, exact)
        return self._context(summary, window, question, resumed=resumed, setup=setup)

    def observe(self, estimated: int, actual: int) -> None:
        """Calibrate the estimate with the input tokens the API counted for a context estimated at `estimated`."""
        self._settings.estimator.observe(estimated, actual)

    async def fold(
        self,
        lease: ThreadLease,
        task: Task,
        steps: list[dict[str, Any]],
        summary: str,
        window: list[Turn],
        setup: AgentSetup | None = None,
    ) -> tuple[Fold | None, Usage]:
        """Fold the window's oldest turns into the summary if it is over the budget (journaled, step by step); the
        room is that of a task with `setup` (its instructions and tools), the defaults' when not given."""
        setup = setup or AgentSetup()

        async def record(step: dict[str, Any]) -> None:
            await self._journal.record_step(lease, task, step)

        fold, usage = await self._compactor.fold_if_needed(
            steps, summary, window, record, fixed_tokens=self._tool_tokens(setup) + self._instruction_tokens(setup)
        )
        if fold is not None:
            self._crash.reached("summary.journaled")
        return fold, usage

    def _tool_tokens(self, setup: AgentSetup) -> int:
        """Tokens every request of a task with `setup` carries besides system, summary and turns: its tools."""
        estimator = self._settings.estimator
        return sum(estimator.text(json.dumps(tool)) for tool in self._loop.tool_definitions(setup))

    def _instruction_tokens(self, setup: AgentSetup) -> int:
        """What the channel's instructions add to the system prompt."""
        if not setup.instructions:
            return 0
        estimator, base = self._settings.estimator, self._settings.system_prompt
        return estimator.text(setup.system_prompt(base)) - estimator.text(base)

    def _context(
        self, summary: str, window: list[Turn], question: Turn, *, resumed: bool, setup: AgentSetup
    ) -> Context:
        settings = self._settings
        pinned = f"[Agent state, not from the user: answering the latest message from {speaker_label(question)}."
        pinned += " This task was interrupted and has resumed.]" if resumed else "]"
        return assemble(
            system_prompt=setup.system_prompt(settings.system_prompt),
            summary=summary,
            window=window,
            new_turns=[question],
            pinned=pinned,
            budget=settings.budget,
            estimator=settings.estimator,
            fixed_tokens=self._tool_tokens(setup),  # (the instructions are in the system prompt it counts)
            cache_ttl=settings.cache_ttl,
        )
