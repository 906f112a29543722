"""The direction of imports the design fixes: layers import downwards only, and the SDKs stay where they belong.

The layers, top to bottom (README, "How the code is laid out"):
  runtime   bot/__main__.py, bot/runtime/   settings, composition root, web front, embedded Redis
  handlers  handlers/                       everything in Slack's formats
  tasks     bot/tasks/                      intake, runner, executor and its handlers, the reply message
  agent     bot/agent/                      Claude client, tools, tool loop, journal steps, context, summary
  core      bot/core/                       the error tree, the Slack port, crash points, log context
  store     store/                          Redis only
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "store", "playground")
LAYERS = ("runtime", "handlers", "tasks", "agent", "core", "store")


def layer_of(module: str) -> str | None:
    """The layer a module of ours belongs to (None for the playground, which sits beside the layers)."""
    if module == "bot.__main__" or module.startswith("bot.runtime"):
        return "runtime"
    for prefix, layer in (("handlers", "handlers"), ("bot.tasks", "tasks"), ("bot.agent", "agent")):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    if module.startswith("bot.core"):
        return "core"
    if module == "store" or module.startswith("store."):
        return "store"
    return None


def module_name(path: Path) -> str:
    """The dotted name of a source file."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether a dotted name is one of our modules or packages."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Everything a file imports (at any depth: a lazy import inside a function counts too), as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= {name for name in submodules if is_module(name)} or {node.module}
    return found


def our_files() -> dict[str, Path]:
    """Every source file of our packages, by module name."""
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def test_every_module_belongs_to_a_layer() -> None:
    """No module sits outside the layers (the playground aside), so the order below covers all of them."""
    stray = [name for name in our_files() if layer_of(name) is None and not name.startswith("playground")]
    assert stray == ["bot"]  # the package's own __init__, empty


def test_layers_import_downwards_only() -> None:
    """A module imports from its own layer or the ones below it, never from a layer above."""
    wrong: list[str] = []
    for name, path in our_files().items():
        layer = layer_of(name)
        if layer is None:
            continue
        for imported in imports_of(path):
            target = layer_of(imported) if imported.split(".")[0] in PACKAGES else None
            if target is not None and LAYERS.index(target) < LAYERS.index(layer):
                wrong.append(f"{name} ({layer}) imports {imported} ({target})")
    assert wrong == []


def test_no_import_circles() -> None:
    """Module imports among our files form no cycle (type-only imports included)."""
    files = our_files()
    graph = {name: {imp for imp in imports_of(path) if imp in files and imp != name} for name, path in files.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        if name in done:
            return
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_runtime_never_imports_the_playground_but_for_python_m_bot_dev() -> None:
    """The emulators load only for `python -m bot dev`; nothing the bot runs in production imports them."""
    users = {
        name
        for name, path in our_files().items()
        if not name.startswith("playground") and any(imp.split(".")[0] == "playground" for imp in imports_of(path))
    }
    assert users == {"bot.__main__"}


def test_store_imports_nothing_of_ours_nor_slack_nor_anthropic() -> None:
    """store/ uses Redis and its own plain models only."""
    for name, path in our_files().items():
        if layer_of(name) == "store":
            roots = {imp.split(".")[0] for imp in imports_of(path)}
            assert not roots & {"bot", "handlers", "playground", "slack_bolt", "slack_sdk", "anthropic"}, name


def test_only_the_claude_client_imports_anthropic() -> None:
    """The Claude client is the one module of the bot that knows the anthropic SDK."""
    users = {
        name
        for name, path in our_files().items()
        if not name.startswith("playground") and any(imp.split(".")[0] == "anthropic" for imp in imports_of(path))
    }
    assert users == {"bot.agent.client"}


def test_only_handlers_and_the_runtime_import_slack() -> None:
    """Slack's SDKs stay at the edge: handlers/ and the runtime that composes the app."""
    for name, path in our_files().items():
        if layer_of(name) not in ("handlers", "runtime", None):
            assert not {imp.split(".")[0] for imp in imports_of(path)} & {"slack_bolt", "slack_sdk"}, name


def test_handlers_never_touch_redis() -> None:
    """Listeners hand work on; only store/ (and the runtime that opens the pool) talks to Redis."""
    for name, path in our_files().items():
        if layer_of(name) == "handlers":
            assert "redis" not in {imp.split(".")[0] for imp in imports_of(path)}, name
