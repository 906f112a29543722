"""(Placeholder until the agent branch merges.)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A step of an answer's work."""

    kind: str
    tool_id: str = ""
    name: str = ""
    title: str = ""
    error: bool = False
