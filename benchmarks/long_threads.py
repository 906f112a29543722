"""Part 4: a long conversation (200 turns) through this bot and through a naive agent that resends everything.

Both talk to the fake Anthropic server, whose usage figures follow the API's prompt caching
(playground/prompt_cache.py). The naive agent is the approach of the persistent-agents article: the whole history
in one state record, all of it sent on every turn, no cache breakpoints. The bot keeps a window of recent turns
under CONTEXT_TOKEN_BUDGET and folds older ones into a summary. Compared: input tokens per request, total input
tokens, the share read from cache, the estimated cost at list prices, and the Redis bytes the conversation takes.

Then the prompt cache's TTL: a shorter conversation with 10 minutes between turns (the fake's cache clock is moved
on, nobody sleeps), run with PROMPT_CACHE_TTL=1h (the default) and with 5m, compared by the share of input read
from cache and the estimated cost, 1-hour cache writes priced at twice the input price and 5-minute ones at 1.25x.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

import anthropic
from redis.asyncio import Redis

from benchmarks.figures import PartResult, Row
from benchmarks.harness import BENCH_USER, Bench, Lab
from benchmarks.stats import median, ratio
from bot.agent.pricing import cost_usd
from bot.runtime.settings import DEFAULT_MODEL, DEFAULT_SUMMARY_MODEL
from store.keys import KeySpace
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, user_texts, wait_until

CHANNEL = "C0LONG"
SYSTEM_PROMPT = "You are a helpful assistant in a Slack thread. " * 30
EPHEMERAL = {"type": "ephemeral"}
GAP_SECONDS = 600.0  # between turns of the TTL comparison: past the 5-minute cache, well within the 1-hour one
Usage = dict[str, Any]


def question(n: int) -> str:
    """A ~400-token message; a few carry facts a later turn needs."""
    fact = f" Remember: ticket T-{n} belongs to team {n % 7}." if n % 25 == 1 else ""
    return f"turn {n}: please look at step {n} of the migration plan.{fact} " + "Details follow. " * 95


def answer(n: int) -> str:
    """A ~300-token answer."""
    return f"Answer to turn {n}: " + "Here is what I found for that step. " * 33


def respond(body: dict[str, Any]) -> Reply:
    """Answers for the bot and the naive agent; summaries keep the 'Remember' facts."""
    system = " ".join(user_texts({"system": body.get("system", "")}))
    text = " ".join(user_texts({"messages": body["messages"]}))
    if "running summary" in system:
        facts = sorted(set(text.split("Remember: ")[1:]))
        return Reply([{"type": "text", "text": "\n".join("Remember: " + f.split(".")[0] + "." for f in facts)}])
    turn = int(text.rsplit("turn ", 1)[1].split(":")[0])
    return Reply([{"type": "text", "text": answer(turn)}])


def input_tokens(usage: Usage) -> int:
    """All input tokens of one request: uncached, written to cache and read from it."""
    return int(usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"])


def cost(usages: list[Usage]) -> float:
    """Estimated US dollars at list prices: answers at the answer model's, summaries at the summary model's; each
    cache write at its TTL's price, as usage.cache_creation splits them."""
    return sum(
        cost_usd(
            DEFAULT_SUMMARY_MODEL if usage.get("summary") else DEFAULT_MODEL,
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_write=usage["cache_creation_input_tokens"] - one_hour_writes(usage),
            cache_write_1h=one_hour_writes(usage),
            cache_read=usage["cache_read_input_tokens"],
        )
        for usage in usages
    )


def one_hour_writes(usage: Usage) -> int:
    """The tokens of a call written to the 1-hour cache."""
    return int((usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0))


def answered(slack: FakeSlack, thread_ts: str, turn: int) -> bool:
    """Whether the thread shows the answer to `turn` as its newest bot reply."""
    replies = slack.bot_replies(CHANNEL, thread_ts)
    return len(replies) == turn and str(replies[-1].get("text", "")).startswith(f"Answer to turn {turn}:")


async def thread_bytes(redis: Redis, ref: ThreadRef) -> int:
    """Redis memory of the thread's own keys (state with summary and window of turns, inbox, queue flag)."""
    space = KeySpace()  # the bench's bot runs with the default QUEUE_SHARDS
    total = 0
    for key in (space.state(ref), space.inbox(ref), space.queued(ref)):
        # SAMPLES 0 counts every element: Redis's default sample of five misjudges a hash of turns.
        total += await redis.memory_usage(key, samples=0) or 0
    return total


async def run_bot(
    bench: Bench, turns: int, checkpoints: tuple[int, ...], *, cache_ttl: str = "1h", gap: float = 0.0
) -> dict[int, int]:
    """Talk `turns` turns with the bot in one thread, `gap` seconds apart on the prompt cache's clock; the thread's
    Redis bytes at each checkpoint."""
    slack = bench.slack
    bot = await bench.start({"SYSTEM_PROMPT": SYSTEM_PROMPT, "PROMPT_CACHE_TTL": cache_ttl})
    sizes: dict[int, int] = {}
    thread_ts: str | None = None
    for n in range(1, turns + 1):
        if n > 1:
            bench.claude.prompt_cache.advance(gap)
        text = f"<@{slack.bot_user_id}> {question(n)}"
        envelope = slack.post_user_message(CHANNEL, text, user=BENCH_USER, thread_ts=thread_ts, mention=True)
        thread_ts = thread_ts or envelope["event"]["ts"]
        await bot.post_event(envelope)
        await wait_until(functools.partial(answered, slack, thread_ts, n), timeout=30, interval=0.005)
        if n in checkpoints:
            await asyncio.sleep(0.05)  # the task finishes (and folds) just after the reply shows
            sizes[n] = await thread_bytes(bench.redis, ThreadRef(slack.team_id, CHANNEL, thread_ts))
    await bench.kill_all()
    return sizes


def with_breakpoint(history: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The history with a cache breakpoint on its last message, so each request reads the previous one's prefix."""
    last = history[-1]
    marked = {"role": last["role"], "content": [{"type": "text", "text": last["content"], "cache_control": EPHEMERAL}]}
    return [*history[:-1], marked]


async def run_naive(
    claude: FakeAnthropic, redis: Redis, turns: int, checkpoints: tuple[int, ...], *, cached: bool = False
) -> dict[int, int]:
    """The article's agent: the whole history in one state record, all of it sent on every turn.

    With `cached`, the same agent given the one-line fix of a cache breakpoint on the newest message: a fairer
    reference for what the bot's window and summary add beyond prompt caching.
    """
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=claude.base_url, max_retries=0)
    history: list[dict[str, str]] = []
    sizes: dict[int, int] = {}
    for n in range(1, turns + 1):
        history.append({"role": "user", "content": question(n)})
        message = await client.messages.create(
            model=DEFAULT_MODEL,
            max_tokens=1500,
            system=SYSTEM_PROMPT,
            messages=with_breakpoint(history) if cached else history,  # type: ignore[arg-type]  # plain dicts
        )
        history.append({"role": "assistant", "content": message.content[0].text})  # type: ignore[union-attr]  # a text block
        await redis.set("naive:state", json.dumps({"conversation_history": history}))
        if n in checkpoints:
            sizes[n] = await redis.memory_usage("naive:state", samples=0) or 0
    await client.close()
    return sizes


def cached_share(usages: list[Usage]) -> float:
    """The share of input tokens read from cache."""
    return sum(int(u["cache_read_input_tokens"]) for u in usages) / sum(input_tokens(u) for u in usages)


def rows(
    bot: list[Usage], naive: list[Usage], naive_cached: list[Usage], bot_bytes: int, naive_bytes: int, turns: int
) -> list[Row]:
    """The comparison, bot first; ratios are bot / naive (and bot / naive with a cache breakpoint for cost)."""
    answers = [input_tokens(u) for u in bot if not u["summary"]]
    naive_requests = [input_tokens(u) for u in naive]
    bot_total, naive_total = sum(input_tokens(u) for u in bot), sum(naive_requests)
    folds = len(bot) - len(answers)
    bot_cost, naive_cost = cost(bot), cost(naive)
    return [
        Row(
            "input tokens per request, median",
            f"{median(answers):,.0f}",
            f"naive: {median(naive_requests):,.0f}",
            ratio(median(answers), median(naive_requests)),
        ),
        Row(
            f"input tokens of the last request (turn {turns})",
            f"{answers[-1]:,}",
            f"naive: {naive_requests[-1]:,}",
            ratio(answers[-1], naive_requests[-1]),
        ),
        Row(
            f"input tokens, all {turns} turns",
            f"{bot_total:,} (with {folds} summary calls)",
            f"naive: {naive_total:,}",
            ratio(bot_total, naive_total),
        ),
        Row(
            "share of input read from cache",
            f"{cached_share(bot):.0%}",
            f"naive: {cached_share(naive):.0%}; with a cache breakpoint: {cached_share(naive_cached):.0%}",
        ),
        Row(
            f"estimated cost of {turns} turns",
            f"${bot_cost:.2f}",
            f"naive: ${naive_cost:.2f}",
            ratio(bot_cost, naive_cost),
        ),
        Row(
            f"estimated cost of {turns} turns, vs a naive agent with a cache breakpoint",
            f"${bot_cost:.2f}",
            f"naive with a cache breakpoint: ${cost(naive_cached):.2f}",
            ratio(bot_cost, cost(naive_cached)),
        ),
        Row(
            f"Redis bytes of the thread at turn {turns}",
            f"{bot_bytes:,}",
            f"naive: {naive_bytes:,}",
            ratio(bot_bytes, naive_bytes),
        ),
    ]


def ttl_rows(one_hour: list[Usage], five_minutes: list[Usage], turns: int) -> list[Row]:
    """The TTL comparison on turns 10 minutes apart: 1-hour TTL (the default) first, the 5-minute one beside it."""
    one_hour_cost, five_minutes_cost = cost(one_hour), cost(five_minutes)
    return [
        Row(
            f"share of input read from cache, {turns} turns 10 min apart",
            f"1-hour TTL: {cached_share(one_hour):.0%}",
            f"5-minute TTL: {cached_share(five_minutes):.0%}",
        ),
        Row(
            f"estimated cost of {turns} turns 10 min apart",
            f"1-hour TTL: ${one_hour_cost:.2f}",
            f"5-minute TTL: ${five_minutes_cost:.2f}",
            ratio(one_hour_cost, five_minutes_cost),
        ),
    ]


async def run_ttls(lab: Lab, turns: int) -> dict[str, list[Usage]]:
    """The bot's usages over `turns` turns 10 minutes apart, with each prompt cache TTL (a fresh fake each)."""
    usages: dict[str, list[Usage]] = {}
    for cache_ttl in ("1h", "5m"):
        async with lab.session() as bench:
            bench.claude.set_default(respond)
            await run_bot(bench, turns, (), cache_ttl=cache_ttl, gap=GAP_SECONDS)
            usages[cache_ttl] = list(bench.claude.usages)
    return usages


async def run(lab: Lab) -> PartResult:
    """The bot's conversation first, then the naive agent's on a fresh fake (its own prompt cache)."""
    turns = lab.settings.turns
    checkpoints = tuple(sorted({max(1, turns // 4), max(1, turns // 2), turns}))
    result = PartResult("long", f"Long threads: {turns} turns, bot vs a naive agent that resends the whole history")
    async with lab.session() as bench:
        bench.claude.set_default(respond)
        started = time.monotonic()
        bot_sizes = await run_bot(bench, turns, checkpoints)
        bot_seconds = time.monotonic() - started
        bot_usages = list(bench.claude.usages)
    async with lab.session() as bench:
        bench.claude.set_default(respond)
        naive_sizes = await run_naive(bench.claude, bench.redis, turns, checkpoints)
        naive_usages = list(bench.claude.usages)
    async with lab.session() as bench:
        bench.claude.set_default(respond)
        await run_naive(bench.claude, bench.redis, turns, checkpoints, cached=True)
        cached_usages = list(bench.claude.usages)
    paused_turns = max(4, turns // 5)
    by_ttl = await run_ttls(lab, paused_turns)
    result.rows = rows(bot_usages, naive_usages, cached_usages, bot_sizes[turns], naive_sizes[turns], turns)
    result.rows += ttl_rows(by_ttl["1h"], by_ttl["5m"], paused_turns)
    result.series = {
        "bot_usages": bot_usages,
        "naive_usages": naive_usages,
        "naive_cached_usages": cached_usages,
        "bytes": {"bot": bot_sizes, "naive": naive_sizes},
        "bot_seconds": bot_seconds,
        "paused_usages": by_ttl,
    }
    result.notes.append(
        f"~400-token messages, ~300-token answers, CONTEXT_TOKEN_BUDGET 24,000; the bot's {turns} turns took "
        f"{bot_seconds:.0f} s with an instant model. Ratios: bot / naive. Cost at list prices (bot/agent/pricing.py): "
        "answers at Sonnet's, the bot's summaries at Haiku's."
    )
    result.notes.append(
        f"Prompt cache TTL: {paused_turns} more turns of the same sizes, 10 minutes apart, once with "
        "PROMPT_CACHE_TTL=1h (the default, also that of the turns above) and once with 5m; 1-hour cache writes "
        "cost 2x the input price, 5-minute ones 1.25x, reads 0.1x. Ratio: 1 hour / 5 minutes."
    )
    return result
