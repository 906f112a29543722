"""Reading the bot's metrics in tests: counters only grow within a test process, so tests compare before and after."""

from __future__ import annotations

from bot.core import metrics


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of the bot's registry (0 when it has not been counted yet)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0
