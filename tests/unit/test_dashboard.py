"""ops/grafana-dashboard.json graphs every metric the bot exposes, and only metrics it exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.core import metrics

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "ops" / "grafana-dashboard.json").read_text())
    return loaded


def queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def families_used() -> set[str]:
    """The metric families the queries name (a series name less its _total, _bucket... suffix)."""
    names = set()
    for query in queries():
        for name in re.findall(r"\b((?:slack_agent|process)_[a-z_]+)\b", query):
            for suffix in SUFFIXES:
                name = name.removesuffix(suffix)
            names.add(name)
    return names


def test_every_bot_metric_is_graphed() -> None:
    """Each metric family of bot/core/metrics.py appears in at least one panel's query."""
    ours = {family.name for family in metrics.REGISTRY.collect() if family.name.startswith(metrics.PREFIX)}
    assert ours and ours <= families_used()


def test_the_dashboard_asks_only_for_metrics_the_bot_exposes() -> None:
    """No query names a metric the bot does not expose (a typo would draw an empty panel)."""
    exposed = {family.name for family in metrics.REGISTRY.collect()}
    assert families_used() <= exposed


def test_panels_are_whole() -> None:
    """Every panel has a unique id and a place; every query a datasource, the dashboard's variable."""
    panels = dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all({"x", "y", "w", "h"} <= set(panel["gridPos"]) for panel in panels)
    for panel in panels:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}" and target["refId"]
