"""Prompt caching as the Messages API does it, to measure how much of a request is read from cache.

The API caches the prefix of a request (tools, then system, then messages, block by block) up to each block
marked with `cache_control`. A later request reads from cache the longest previously cached prefix it shares,
found by looking back from each of its breakpoints over at most 20 block boundaries; the part from there to its
last breakpoint is written to the cache; the rest is plain input. Prefixes under the model's minimum are not
cached (the docs' table: 4,096 tokens for Opus 4.5 to 4.7 and Haiku 4.5, 2,048 for Sonnet 4.6 and the Haiku 3
models, 512 for the Opus 5 family, 1,024 for the others). Tokens here are characters / 4, like the fake's estimate.

A cached prefix lives 5 minutes, or 1 hour when its breakpoint says `"ttl": "1h"`, and each read starts its time
again. The usage splits the writes by TTL as the API's `cache_creation` does: the tokens up to the last 1-hour
breakpoint written are 1-hour writes, the rest 5-minute ones (the API takes 1-hour breakpoints only before 5-minute
ones). Time is the injected clock's plus what `advance` skipped, so tests and benchmarks wait an hour in no time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

LOOKBACK_BLOCKS = 20
MIN_CACHEABLE_TOKENS = 1024
# Model id prefixes whose minimum cacheable prefix is not MIN_CACHEABLE_TOKENS, most specific first.
MODEL_MINIMUMS = (
    (("claude-opus-4-5", "claude-opus-4-6", "claude-opus-4-7", "claude-haiku-4-5"), 4096),
    (("claude-sonnet-4-6", "claude-3-haiku", "claude-3-5-haiku", "claude-haiku-3"), 2048),
    (("claude-opus-5",), 512),
)


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix the API caches for `model`."""
    for prefixes, minimum in MODEL_MINIMUMS:
        if model.startswith(prefixes):
            return minimum
    return MIN_CACHEABLE_TOKENS


TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


def _blocks(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's blocks in cache order: tools, system, then each message's content blocks."""
    blocks: list[dict[str, Any]] = [dict(tool) for tool in request.get("tools", [])]
    system = request.get("system", [])
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else [dict(b) for b in system]
    for message in request.get("messages", []):
        content = message["content"]
        content = [{"type": "text", "text": content}] if isinstance(content, str) else content
        blocks += [{**block, "role": message["role"]} for block in content]
    return blocks


def _tokens(block: dict[str, Any]) -> int:
    if block.get("type") == "text":
        return len(str(block.get("text", ""))) // 4
    return len(json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)) // 4


def ttl_of(block: dict[str, Any]) -> float:
    """Seconds a prefix cached at this breakpoint lives unread: 5 minutes unless its cache_control says 1h."""
    return TTL_SECONDS["1h"] if block["cache_control"].get("ttl") == "1h" else TTL_SECONDS["5m"]


def request_tokens(request: dict[str, Any]) -> int:
    """All input tokens of a request (tools, system, messages), counted the way the cache model counts."""
    return sum(_tokens(block) for block in _blocks(request))


class PromptCache:
    """Remembers cached prefixes across requests, until they expire, and computes each request's usage split."""

    def __init__(self, min_tokens: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._cached: dict[str, tuple[float, float]] = {}  # prefix hash -> (expires at, TTL in seconds)
        self._min_tokens = min_tokens  # None: the minimum of each request's model
        self._clock = clock
        self._skipped = 0.0

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass for the cache at once (a pause between turns, without sleeping)."""
        self._skipped += seconds

    def now(self) -> float:
        """The cache's time: the clock's, plus what `advance` skipped."""
        return self._clock() + self._skipped

    def _live(self, key: str, now: float) -> bool:
        entry = self._cached.get(key)
        return entry is not None and entry[0] > now

    def _keep(self, key: str, ttl: float, now: float) -> None:
        """Cache (or refresh) a prefix for `ttl` from now; a longer TTL it already has is kept."""
        old = self._cached.get(key)
        ttl = max(ttl, old[1]) if old is not None and old[0] > now else ttl
        self._cached[key] = (now + ttl, ttl)

    def usage(self, request: dict[str, Any]) -> dict[str, Any]:
        """input_tokens, cache_creation_input_tokens (and its cache_creation split by TTL) and
        cache_read_input_tokens of this request."""
        now = self.now()
        blocks = _blocks(request)
        hashes, running = [], hashlib.sha256()
        for block in blocks:
            running.update(
                json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True).encode()
            )
            hashes.append(running.copy().hexdigest())
        sizes = [_tokens(block) for block in blocks]
        minimum = self._min_tokens or min_cacheable_tokens(str(request.get("model", "")))
        breakpoints = [i for i, block in enumerate(blocks) if "cache_control" in block]
        read_upto = 0
        for point in breakpoints:
            for end in range(point, max(-1, point - LOOKBACK_BLOCKS), -1):
                if self._live(hashes[end], now):
                    self._keep(hashes[end], self._cached[hashes[end]][1], now)  # a read refreshes the entry
                    read_upto = max(read_upto, end + 1)
                    break
        write_upto = one_hour_upto = read_upto
        for point in breakpoints:
            if sum(sizes[: point + 1]) >= minimum:
                ttl = ttl_of(blocks[point])
                self._keep(hashes[point], ttl, now)
                write_upto = max(write_upto, point + 1)
                if ttl == TTL_SECONDS["1h"]:
                    one_hour_upto = max(one_hour_upto, point + 1)
        read = sum(sizes[:read_upto])
        written = sum(sizes[read_upto:write_upto])
        written_1h = sum(sizes[read_upto:one_hour_upto])
        return {
            "input_tokens": max(1, sum(sizes) - read - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written - written_1h,
                "ephemeral_1h_input_tokens": written_1h,
            },
        }


def cache_control_problem(request: dict[str, Any]) -> str | None:
    """The API's invalid_request_error message for cache breakpoints it refuses, else None: a ttl other than 5m
    or 1h, more than 4 breakpoints, or a 1-hour breakpoint after a 5-minute one (in the order tools, system,
    messages)."""
    marked = [(path, block["cache_control"]) for path, block in _paths(request) if "cache_control" in block]
    for path, mark in marked:
        if not isinstance(mark, dict) or mark.get("ttl", "5m") not in TTL_SECONDS:
            return f"{path}.cache_control.ephemeral.ttl: Input should be '5m' or '1h'"
    if len(marked) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(marked)}."
    seen_5m = False
    for path, mark in marked:
        if mark.get("ttl", "5m") == "1h" and seen_5m:
            return (
                f"{path}.cache_control.ttl: a ttl='1h' cache_control block must not come after a ttl='5m' "
                "cache_control block. Note that blocks are processed in the following order: `tools`, `system`, "
                "`messages`."
            )
        seen_5m = seen_5m or mark.get("ttl", "5m") == "5m"
    return None


def _paths(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The request's blocks that may carry a breakpoint, in cache order, each with its path as the API names it."""
    found = [(f"tools.{i}", tool) for i, tool in enumerate(request.get("tools") or []) if isinstance(tool, dict)]
    system = request.get("system")
    if isinstance(system, list):
        found += [(f"system.{i}", block) for i, block in enumerate(system) if isinstance(block, dict)]
    for i, message in enumerate(request.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            found += [(f"messages.{i}.content.{j}", b) for j, b in enumerate(content) if isinstance(b, dict)]
    return found
