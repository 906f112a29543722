"""Extended thinking for answers: the request fields that turn it on, and which models take them.

Adaptive thinking (`thinking: {"type": "adaptive"}`) lets the model decide whether and how long to think; the effort
parameter (`output_config.effort`) steers how much it spends, thinking included. Thinking blocks come back with a
signature and must go back to the API unmodified in the assistant turn before tool results (bot/agent/steps.py
keeps them). Their text is never shown in Slack nor kept in the thread's turns: only text blocks are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

# The levels the Messages API documents for output_config.effort; which of them a model accepts varies by model.
Effort = Literal["low", "medium", "high", "xhigh", "max"]
EFFORTS: frozenset[str] = frozenset(get_args(Effort))

# "claude-sonnet-4-6", "claude-opus-4-5-20251101", "claude-haiku-5-5": family, major, optional minor, optional date.
_MODEL_VERSION = re.compile(r"^claude-[a-z]+-(\d+)(?:-(\d{1,2}))?(?:-\d{8})?$")
# Adaptive thinking starts with Claude Opus 4.6 and Sonnet 4.6; older models take only manual budget_tokens.
ADAPTIVE_FROM = (4, 6)
# The effort levels that came after the first three, and the first model version that takes each.
EFFORT_FROM: dict[str, tuple[int, int]] = {"max": (4, 6), "xhigh": (4, 7)}


def model_version(model: str) -> tuple[int, int] | None:
    """(major, minor) of a Claude model id named the current way, else None (an alias, a proxy's name...)."""
    match = _MODEL_VERSION.match(model)
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def refuses_adaptive(model: str) -> bool:
    """True for model ids known to predate adaptive thinking (Claude 3.x, and 4.x before 4.6); unknown ids pass."""
    if model.startswith("claude-3"):  # claude-3-7-sonnet-...: the old naming, every one of them older
        return True
    version = model_version(model)
    return version is not None and version < ADAPTIVE_FROM


def refuses_effort(model: str, effort: Effort) -> bool:
    """True for a level a model id is known to predate (xhigh before 4.7, max before 4.6); unknown ids pass."""
    version = model_version(model)
    needed = EFFORT_FROM.get(effort)
    return version is not None and needed is not None and version < needed


@dataclass(frozen=True)
class Thinking:
    """Adaptive thinking for the answer model's calls, with an effort level (None: the model's default)."""

    effort: Effort | None = None

    def request_fields(self) -> dict[str, Any]:
        """The Messages API fields that ask for it. The bot sets no temperature, top_k or tool_choice, which
        thinking restricts."""
        fields: dict[str, Any] = {"thinking": {"type": "adaptive"}}
        if self.effort is not None:
            fields["output_config"] = {"effort": self.effort}
        return fields


# How a task's setup records the thinking its calls were made with (bot/agent/setup.py): "" is none.
NO_THINKING = ""


def thinking_label(thinking: Thinking | None) -> str:
    """The journal's word for a thinking configuration: "", "adaptive" or "adaptive:EFFORT"."""
    if thinking is None:
        return NO_THINKING
    return "adaptive" if thinking.effort is None else f"adaptive:{thinking.effort}"


def parse_thinking(label: str) -> Thinking | None:
    """The configuration a label names; ValueError for one this release does not know."""
    if label == NO_THINKING:
        return None
    kind, _, effort = label.partition(":")
    if kind != "adaptive" or (effort and effort not in EFFORTS):
        raise ValueError(f"unknown thinking {label[:40]!r}")
    return Thinking(cast(Effort, effort) if effort else None)
