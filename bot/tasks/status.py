"""The agents' state and usage as people read them in a thread, in plain Slack text (views: handlers/views.py)."""

from __future__ import annotations

import time

from store.models import AgentState, Usage


def describe_usage(usage: Usage) -> str:
    """Tokens, cache share and estimated cost on one line."""
    total_in = usage.total_input_tokens
    cached = f", {usage.cache_read_tokens / total_in:.0%} read from cache" if total_in else ""
    return (
        f"{total_in:,} tokens in{cached}, {usage.output_tokens:,} out, {usage.model_calls} model calls, "
        f"about ${usage.cost_usd:,.4f}"
    )


def describe_state(state: AgentState | None) -> str:
    """The agent's state as a short Slack message (the answer to `@bot status` in its thread)."""
    if state is None:
        return "No agent here yet: mention me to start one."
    lines = [
        f"*Agent status:* {state.status}, last active {ago(state.updated_at)}",
        f"• Turns: {state.turns}"
        + (f" ({state.summarized_turns} folded into a summary)" if state.summarized_turns else ""),
        f"• Tasks done: {state.tasks_done}, stopped: {state.tasks_stopped}, failed: {state.tasks_failed}",
        f"• Usage: {describe_usage(state.usage)}",
    ]
    if state.last_error:
        lines.append(f"• Last error: {state.last_error}")
    return "\n".join(lines)


def ago(timestamp: float) -> str:
    """How long ago, roughly."""
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
