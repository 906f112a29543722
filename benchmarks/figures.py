"""What each part hands back: rows for the summary table, and the raw series the plots and results.json need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the summary table: a figure of the bot beside its reference from the same run."""

    measure: str
    bot: str
    reference: str
    ratio: float | None = None
    target: str = ""
    met: bool | None = None  # None when the row has no target


@dataclass
class PartResult:
    """The outcome of one part of the benchmark."""

    name: str
    title: str
    seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable data for plots and results.json


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds."""
    return f"{seconds * 1000:.0f} ms"


def secs(seconds: float) -> str:
    """Seconds with two decimals."""
    return f"{seconds:.2f} s"
