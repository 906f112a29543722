"""The fake's prompt-cache model, since the cache-share benchmark relies on it."""

from __future__ import annotations

from typing import Any

from playground.prompt_cache import PromptCache

SYSTEM = [{"type": "text", "text": "s" * 8000, "cache_control": {"type": "ephemeral"}}]


def request(*texts: str, breakpoint_on_last: bool = True) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for n, text in enumerate(texts):
        block: dict[str, Any] = {"type": "text", "text": text}
        if breakpoint_on_last and n == len(texts) - 1:
            block["cache_control"] = {"type": "ephemeral"}
        messages.append({"role": "user" if n % 2 == 0 else "assistant", "content": [block]})
    return {"system": SYSTEM, "messages": messages}


def test_first_request_writes_and_the_next_reads_the_shared_prefix() -> None:
    """A repeated prefix is read from cache; only the new tail is written."""
    cache = PromptCache()
    first = cache.usage(request("q" * 4000))
    assert first["cache_read_input_tokens"] == 0 and first["cache_creation_input_tokens"] == 3000
    second = cache.usage(request("q" * 4000, "a" * 400, "r" * 4000))
    assert second["cache_read_input_tokens"] == 3000
    assert second["cache_creation_input_tokens"] == 100 + 1000


def test_a_changed_system_prompt_misses_the_cache() -> None:
    """Any change early in the prefix (a volatile value in the system prompt) makes everything a cache write."""
    cache = PromptCache()
    cache.usage(request("q" * 4000))
    changed = request("q" * 4000)
    changed["system"] = [{**SYSTEM[0], "text": "t" + SYSTEM[0]["text"][1:]}]
    assert cache.usage(changed)["cache_read_input_tokens"] == 0


def test_without_breakpoints_nothing_is_cached() -> None:
    """Requests without cache_control are all plain input."""
    cache = PromptCache()
    plain = {"system": "s" * 8000, "messages": [{"role": "user", "content": "q" * 4000}]}
    cache.usage(plain)
    assert cache.usage(plain) == {"input_tokens": 3000, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
