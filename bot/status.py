"""The agent's state as people read it in Slack."""

from __future__ import annotations

import time

from store.models import AgentState


def describe_state(state: AgentState | None) -> str:
    """The agent's state as a short Slack message."""
    if state is None:
        return "No agent here yet: mention me to start one."
    age = _ago(state.updated_at)
    lines = [
        f"*Agent status:* {state.status}, last active {age}",
        f"• Turns remembered: {state.turns}",
        f"• Tasks done: {state.tasks_done}, failed: {state.tasks_failed}",
        f"• Tokens: {state.input_tokens:,} in, {state.output_tokens:,} out, over {state.model_calls} model calls",
    ]
    if state.last_error:
        lines.append(f"• Last error: {state.last_error}")
    return "\n".join(lines)


def _ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
