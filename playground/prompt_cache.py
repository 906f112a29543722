"""Prompt caching as the Messages API does it, to measure how much of a request is read from cache.

The API caches the prefix of a request (tools, then system, then messages, block by block) up to each block
marked with `cache_control`. A later request reads from cache the longest previously cached prefix it shares,
found by looking back from each of its breakpoints over at most 20 block boundaries; the part from there to its
last breakpoint is written to the cache; the rest is plain input. Prefixes under the model's minimum
(1,024 tokens for Sonnet and Opus) are not cached. Tokens here are characters / 4, like the fake's estimate.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

LOOKBACK_BLOCKS = 20
MIN_CACHEABLE_TOKENS = 1024


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


def request_tokens(request: dict[str, Any]) -> int:
    """All input tokens of a request (tools, system, messages), counted the way the cache model counts."""
    return sum(_tokens(block) for block in _blocks(request))


class PromptCache:
    """Remembers cached prefixes across requests and computes each request's usage split."""

    def __init__(self, min_tokens: int = MIN_CACHEABLE_TOKENS) -> None:
        self._cached: set[str] = set()
        self._min_tokens = min_tokens

    def usage(self, request: dict[str, Any]) -> dict[str, int]:
        """input_tokens, cache_creation_input_tokens and cache_read_input_tokens of this request."""
        blocks = _blocks(request)
        hashes, running = [], hashlib.sha256()
        for block in blocks:
            running.update(
                json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True).encode()
            )
            hashes.append(running.copy().hexdigest())
        sizes = [_tokens(block) for block in blocks]
        breakpoints = [i for i, block in enumerate(blocks) if "cache_control" in block]
        read_upto = 0
        for point in breakpoints:
            for end in range(point, max(-1, point - LOOKBACK_BLOCKS), -1):
                if hashes[end] in self._cached:
                    read_upto = max(read_upto, end + 1)
                    break
        write_upto = read_upto
        for point in breakpoints:
            if sum(sizes[: point + 1]) >= self._min_tokens:
                self._cached.add(hashes[point])
                write_upto = max(write_upto, point + 1)
        read = sum(sizes[:read_upto])
        written = sum(sizes[read_upto:write_upto])
        return {
            "input_tokens": max(1, sum(sizes) - read - written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }
