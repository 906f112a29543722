"""Context assembly under a token budget, laid out for prompt caching.

A request is, in this order (the order the API caches in: tools, system, messages):
  system    the stable system prompt                                               <- cache breakpoint
            then the rolling summary of older turns                                <- cache breakpoint
  messages  the window of recent turns verbatim, then the new message              <- cache breakpoint
            and, after that breakpoint, a short pinned block of the agent's state (the only volatile part)
So consecutive turns read the system prompt, the summary and the earlier window from the cache, and only the
new exchange is written to it. The summary changes only when older turns are folded into it; the breakpoint after
the system prompt lets the tools and system prompt be read from the cache across that change.

Every breakpoint has the TTL of PROMPT_CACHE_TTL, 1 hour by default, not only the stable prefix's: people in a
Slack thread often answer more than 5 minutes apart, and a 5-minute conversation breakpoint would then write the
whole window again at 1.25 times the input price on each such turn, where the 1-hour one reads it at 0.1 times
and writes only the new exchange at 2 times. (The default system prompt and tools are also far below the smallest
prefix the API caches, 1,024 tokens, so a 1-hour TTL on them alone would change nothing.) The API refuses a
1-hour breakpoint after a 5-minute one, which one TTL for all of them can never send.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.agent.messages import build_messages
from store.models import Turn

CacheTtl = Literal["5m", "1h"]
# A note (a thread message not addressed to the bot) is context for a later answer, not a question: it is kept to
# this many characters (about 1,000 tokens), as is each earlier message read when the bot joins a thread late,
# so that a busy thread's notes fold into the summary a few at a time instead of one pasted log filling the
# window. A mention keeps MAX_INPUT_CHARS.
NOTE_MAX_CHARS = 4_000
# Per message and per request overheads the API adds around the text (roles, separators), in tokens.
MESSAGE_OVERHEAD = 4
REQUEST_OVERHEAD = 16


def cut_sentence(original: int, kept: int, what: str = "message") -> str:
    """What to say of a text that was cut: how long it was, and how much of it was read."""
    return f"The {what} had {original:,} characters; only the first {kept:,} were read."


def cut_to(text: str, limit: int, what: str = "message") -> str:
    """The text within `limit` characters; a longer one is cut there and says so at its end."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n\n[{cut_sentence(len(text), limit, what)}]"


class TokenEstimator:
    """Estimates tokens from characters, calibrated by what the API reports for real requests.

    Four characters a token is the usual rule for English; code, other languages and Slack markup differ, so
    after each model call the ratio of real to estimated input tokens moves the estimate (a moving average,
    kept within [0.5, 3]). One per process: the ratio is a property of the model's tokenizer and our texts.
    """

    def __init__(self, ratio: float = 1.0) -> None:
        self.ratio = ratio

    def text(self, text: str) -> int:
        """Estimated tokens of a text."""
        return math.ceil(len(text) / 4 * self.ratio)

    def turns(self, turns: Iterable[Turn]) -> int:
        """Estimated tokens of turns as they are sent."""
        return sum(self.per_turn(turns))

    def per_turn(self, turns: Iterable[Turn]) -> list[int]:
        """Estimated tokens of each turn, so callers trimming a window need not count it again per step."""
        return [self.messages(build_messages([turn])) for turn in turns]

    def messages(self, messages: Sequence[dict[str, Any]]) -> int:
        """Estimated tokens of Messages API messages (text, tool use and tool results)."""
        total = 0
        for message in messages:
            total += MESSAGE_OVERHEAD
            content = message["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for block in blocks:
                total += self.text(str(block.get("text") or block.get("content") or block.get("input") or ""))
        return total

    def system(self, system: Sequence[dict[str, Any]]) -> int:
        """Estimated tokens of system blocks."""
        return sum(self.text(block["text"]) for block in system)

    def observe(self, estimated: int, actual: int) -> None:
        """Learn from a request whose real input token count is known."""
        if estimated <= 0 or actual <= 0:
            return
        measured = self.ratio * actual / estimated
        self.ratio = min(3.0, max(0.5, 0.7 * self.ratio + 0.3 * measured))


@dataclass(frozen=True)
class Budget:
    """Token limits of one thread's context."""

    total: int  # CONTEXT_TOKEN_BUDGET: system, tools, summary, pinned block and window together
    summary_max: int  # SUMMARY_MAX_TOKENS
    pinned_reserve: int = 150
    tool_round_reserve: int = 2_200  # one round of tool use (a capped read_thread result and its call)

    @property
    def fold_target(self) -> int:
        """After a fold the context is brought down to this, so several turns fit before the next fold."""
        return int(self.total * 0.6)


@dataclass(frozen=True)
class Context:
    """A request's system blocks and messages, and what its assembly left out."""

    system: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    estimated_tokens: int
    omitted_turns: int


def cache_control(ttl: CacheTtl) -> dict[str, str]:
    """A cache breakpoint of the given TTL; 5 minutes is the API's default, sent without a ttl as before."""
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def system_blocks(system_prompt: str, summary: str, cache_ttl: CacheTtl = "1h") -> list[dict[str, Any]]:
    """The stable system prompt and the summary, each followed by a cache breakpoint."""
    mark = cache_control(cache_ttl)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": system_prompt, "cache_control": mark}]
    if summary:
        text = f"Summary of the earlier conversation in this thread:\n{summary}"
        blocks.append({"type": "text", "text": text, "cache_control": mark})
    return blocks


def as_blocks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with list content, so a cache breakpoint can sit on a block and renders stay byte-identical."""
    return [
        {
            "role": m["role"],
            "content": [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str) else m["content"],
        }
        for m in messages
    ]


def assemble(
    *,
    system_prompt: str,
    summary: str,
    window: list[Turn],
    new_turns: list[Turn],
    pinned: str,
    budget: Budget,
    estimator: TokenEstimator,
    fixed_tokens: int = 0,
    cache_ttl: CacheTtl = "1h",
) -> Context:
    """The request for an answer: as much of the window as fits the budget, never splitting the new message.

    `fixed_tokens` counts what else every request carries (tool definitions). Turns that do not fit are left
    out oldest first (they are still stored until a fold summarizes them); the pinned block says so. Its (at most three
    of the API's four) cache breakpoints all have `cache_ttl`.
    """
    system = system_blocks(system_prompt, summary, cache_ttl)
    fixed = fixed_cost(system_prompt, summary, budget=budget, estimator=estimator, fixed_tokens=fixed_tokens)
    omitted = turns_to_evict(window, room=budget.total - fixed, estimator=estimator, keep=0)
    kept = window[omitted:]
    messages = as_blocks(build_messages([*kept, *new_turns]))
    last = messages[-1]
    note = pinned + (f" {omitted} older turns are left out of view for length." if omitted else "")
    last["content"] = [
        *last["content"][:-1],
        {**last["content"][-1], "cache_control": cache_control(cache_ttl)},
        {"type": "text", "text": note},
    ]
    estimated = REQUEST_OVERHEAD + fixed_tokens + estimator.system(system) + estimator.messages(messages)
    return Context(system, messages, estimated, omitted)


def fixed_cost(
    system_prompt: str, summary: str | None, *, budget: Budget, estimator: TokenEstimator, fixed_tokens: int
) -> int:
    """Tokens an answer request carries besides its turns: the request overhead, what `fixed_tokens` counts (the
    tool definitions), the system prompt and the summary, and the reserves for the pinned block and a tool round.

    The one sum behind both what is sent (assemble) and when to fold (Compactor). `summary=None` counts the summary
    at its cap (SUMMARY_MAX_TOKENS) instead of as it is: deciding when to fold looks ahead to the summary that
    folding writes, which may grow up to the cap, while a request counts the summary it actually sends.
    """
    system = estimator.system(system_blocks(system_prompt, summary or ""))
    summary_at_cap = budget.summary_max if summary is None else 0
    return REQUEST_OVERHEAD + fixed_tokens + system + summary_at_cap + budget.pinned_reserve + budget.tool_round_reserve


def turns_to_evict(window: list[Turn], *, room: int, estimator: TokenEstimator, keep: int = 1) -> int:
    """How many of the oldest turns to take out so the rest fits `room`; cuts fall before a person's turn.

    The one trimming rule of a request (what it leaves out of view) and of a fold (what leaves the window). At
    least `keep` of the newest turns stay whatever their size: a fold never empties the window (keep=1), while a
    request may leave out every earlier turn (keep=0), its new message being sent whole after them anyway.
    """
    sizes = estimator.per_turn(window)
    evict, total = 0, sum(sizes)
    while evict < len(window) - keep and total > room:
        total -= sizes[evict]
        evict += 1
    while evict < len(window) - 1 and window[evict].role == "assistant":
        evict += 1  # start what stays at a person's turn, as a conversation does
    return evict
