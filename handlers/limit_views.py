"""What `/agent limits` and the spend part of `/agent status` show, in Slack's mrkdwn."""

from __future__ import annotations

from typing import Any

from bot.tasks.budgets import budgets_of, dollars, until
from store.limits import DESCRIPTIONS, DOLLAR_LIMITS, LIMIT_NAMES, LimitsView
from store.spend import Scope, Spent, next_midnight

SCOPE_LABELS = {Scope.USER: "You", Scope.CHANNEL: "This channel", Scope.WORKSPACE: "The workspace"}
LIMITS_USAGE = (
    "`/agent limits <name> <value>` changes one (admins only): a number, `off`, or `default` for the setting."
)


def spend_block(spent: Spent, view: LimitsView, now: float) -> dict[str, Any]:
    """A section of `/agent status`: today's spend of the asker, the channel and the workspace against their budgets."""
    budgets = budgets_of(view.limits)
    parts = []
    for scope in Scope:
        limit = budgets.of(scope)
        against = f" of {dollars(limit)}" if limit else " (no limit)"
        parts.append(f"{SCOPE_LABELS[scope]} {dollars(spent.of(scope))}{against}")
    text = (
        f"*Spent today* (UTC, resets in {until(next_midnight(now), now)}): " + " · ".join(parts) + "\n"
        "_Each model call holds its worst case until it is settled to its real cost._"
    )
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def limit_value(name: str, value: float | int) -> str:
    """A limit's value as people read it."""
    if not value:
        return "off"
    return dollars(round(value * 1_000_000)) if name in DOLLAR_LIMITS else f"{value:,}"


def limits_text(view: LimitsView) -> str:
    """Every limit of the workspace, its value and whether an admin set it."""
    lines = ["*Limits of this workspace*"]
    for name in LIMIT_NAMES:
        source = "set by an admin" if name in view.overridden else "setting"
        value = limit_value(name, view.limits.value(name))
        lines.append(f"• `{name}`: {value} ({source}): {DESCRIPTIONS[name]}")
    lines.append(LIMITS_USAGE)
    return "\n".join(lines)
