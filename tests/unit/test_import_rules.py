"""The direction of imports the design fixes: store knows nothing of Slack or Anthropic, and so on."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of `package` imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_store_imports_nothing_of_ours_nor_slack_nor_anthropic() -> None:
    """store/ uses Redis and its own plain models only."""
    for path, names in imports_of("store").items():
        assert not names & {"bot", "handlers", "slack_bolt", "slack_sdk", "anthropic"}, path


def test_only_bot_llm_imports_anthropic() -> None:
    """The Claude client is the one module that knows the anthropic SDK."""
    users = {
        path
        for package in ("bot", "handlers", "store")
        for path, names in imports_of(package).items()
        if "anthropic" in names
    }
    assert users == {"bot/llm.py"}


def test_only_handlers_and_the_composition_root_import_slack() -> None:
    """Slack's SDKs stay at the edge: handlers/ and bot/app.py."""
    for path, names in imports_of("bot").items():
        if path != "bot/app.py":
            assert not names & {"slack_bolt", "slack_sdk"}, path


def test_handlers_never_touch_redis() -> None:
    """Listeners hand work on; only store/ (and the composition root that opens the pool) talks to Redis."""
    for path, names in imports_of("handlers").items():
        assert "redis" not in names, path
