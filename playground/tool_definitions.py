"""The fake API's checks of a request's typed tool definitions (so far the memory tool), as the API refuses them.

The API validates each `tools` entry against the schema of its `type`: a memory tool must be named "memory" and
carries only the fields the API defines for it (the SDK's MemoryTool20250818Param); anything else is a 400.
"""

from __future__ import annotations

from typing import Any

MEMORY_TYPE = "memory_20250818"
_MEMORY_FIELDS = frozenset(
    {"type", "name", "cache_control", "allowed_callers", "defer_loading", "input_examples", "strict"}
)


def tools_problem(tools: Any) -> str | None:
    """The API's invalid_request_error message for a malformed memory tool definition, else None."""
    if not isinstance(tools, list):
        return None
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type")
        if isinstance(kind, str) and kind.startswith("memory_") and kind != MEMORY_TYPE:
            return f"tools.{index}: Input tag '{kind}' found using 'type' does not match any of the expected tags"
        if kind != MEMORY_TYPE:
            continue
        if tool.get("name") != "memory":
            return f"tools.{index}.{MEMORY_TYPE}.name: Input should be 'memory'"
        extras = sorted(set(tool) - _MEMORY_FIELDS)
        if extras:
            return f"tools.{index}.{MEMORY_TYPE}.{extras[0]}: Extra inputs are not permitted"
    return None
