"""The fake's prompt-cache model, since the cache-share benchmark relies on it."""

from __future__ import annotations

from typing import Any

from playground.prompt_cache import PromptCache, request_tokens

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
    assert cache.usage(plain) == {
        "input_tokens": 3000,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
    }


ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}


def with_ttl(request: dict[str, Any], mark: dict[str, str]) -> dict[str, Any]:
    """The request with every breakpoint given `mark`."""
    system = [{**block, "cache_control": mark} for block in request["system"]]
    messages = [
        {**m, "content": [{**b, "cache_control": mark} if "cache_control" in b else b for b in m["content"]]}
        for m in request["messages"]
    ]
    return {"system": system, "messages": messages}


def test_a_5_minute_prefix_expires_unread_and_a_read_starts_its_time_again() -> None:
    """Read 4 minutes after its write a 5-minute prefix is still there, and 4 minutes after that read too; 6 minutes
    after the last use it is gone and written again."""
    cache = PromptCache(clock=lambda: 0.0)
    cache.usage(request("q" * 4000))
    for _ in range(2):
        cache.advance(240)
        assert cache.usage(request("q" * 4000))["cache_read_input_tokens"] == 3000
    cache.advance(360)
    again = cache.usage(request("q" * 4000))
    assert (again["cache_read_input_tokens"], again["cache_creation_input_tokens"]) == (0, 3000)


def test_a_1_hour_prefix_outlives_a_10_minute_pause_and_its_writes_are_counted_apart() -> None:
    """Written with ttl 1h, a prefix is read 10 and 59 minutes later, and its write is a 1-hour one; an hour unread
    and it is gone."""
    cache = PromptCache(clock=lambda: 0.0)
    first = cache.usage(with_ttl(request("q" * 4000), ONE_HOUR))
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 3000}
    cache.advance(600)
    assert cache.usage(with_ttl(request("q" * 4000), ONE_HOUR))["cache_read_input_tokens"] == 3000
    cache.advance(3540)
    assert cache.usage(with_ttl(request("q" * 4000), ONE_HOUR))["cache_read_input_tokens"] == 3000
    cache.advance(3601)
    assert cache.usage(with_ttl(request("q" * 4000), ONE_HOUR))["cache_read_input_tokens"] == 0


def test_writes_up_to_the_last_1_hour_breakpoint_are_1_hour_writes_and_the_rest_5_minute_ones() -> None:
    """A 1-hour breakpoint on the system prompt and a 5-minute one on the message split the write between them, and
    10 minutes later only the 1-hour prefix is read."""
    cache = PromptCache(clock=lambda: 0.0)
    mixed = request("q" * 4000)
    mixed["system"] = [{**SYSTEM[0], "cache_control": ONE_HOUR}]
    usage = cache.usage(mixed)
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}
    assert usage["cache_creation_input_tokens"] == 3000
    cache.advance(600)
    later = cache.usage(mixed)
    assert (later["cache_read_input_tokens"], later["cache_creation"]["ephemeral_5m_input_tokens"]) == (2000, 1000)


def test_a_changed_summary_still_reads_the_tools_and_system_prompt_from_the_cache() -> None:
    """With the breakpoint after the system prompt, a request whose summary changed (a fold) reads the tools and
    system prompt from the cache and writes only from the summary on."""
    from bot.agent.context import system_blocks

    tools = [{"name": "read_thread", "description": "d" * 6000, "input_schema": {"type": "object"}}]
    messages = [{"role": "user", "content": [{"type": "text", "text": "q" * 400, "cache_control": ONE_HOUR}]}]
    cache = PromptCache(clock=lambda: 0.0)
    cache.usage({"tools": tools, "system": system_blocks("s" * 2000, "first summary"), "messages": messages})
    folded = cache.usage({"tools": tools, "system": system_blocks("s" * 2000, "second summary"), "messages": messages})
    prefix = request_tokens({"tools": tools, "system": [{"type": "text", "text": "s" * 2000}], "messages": []})
    assert folded["cache_read_input_tokens"] == prefix > 1024


def test_the_shortest_cached_prefix_is_the_models_own() -> None:
    """A 2,000-token prefix is cached for a model whose minimum is 1,024 but not for Haiku 4.5 (4,096): the fake
    does not cache what the API would not."""
    system = [{"type": "text", "text": "x" * 8_000, "cache_control": {"type": "ephemeral"}}]
    for model, written in (("claude-sonnet-4-5", 2_000), ("claude-haiku-4-5-20251001", 0), ("claude-opus-5", 2_000)):
        usage = PromptCache(clock=lambda: 0.0).usage({"model": model, "system": system, "messages": []})
        assert usage["cache_creation_input_tokens"] == written, model
