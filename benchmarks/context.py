"""Benchmark: a 200-turn conversation through this bot and through a naive agent that resends everything.

    .venv/bin/python -m benchmarks.context            (needs a Redis on 127.0.0.1:6379; uses database 10)

Both talk to the fake Anthropic server of tests/fakes, whose usage figures follow the API's prompt caching
(tests/fakes/prompt_cache.py). The naive agent is the approach of the persistent-agents article: the whole
history in one state record, all of it sent on every turn, no cache breakpoints. Prints, for both: input tokens
per request (p50, max), total input tokens, the share of input tokens read from cache, and the Redis bytes the
conversation takes at turns 50, 100 and 200.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anthropic
from redis.asyncio import Redis

from store import keys
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, user_texts, wait_until
from tests.integration.harness import SIGNING_SECRET, BotProcess, free_port

REDIS_URL = "redis://127.0.0.1:6379/10"
CHANNEL = "C0BENCH"
TURNS = 200
CHECKPOINTS = (50, 100, 200)
SYSTEM_PROMPT = "You are a helpful assistant in a Slack thread. " * 30


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


def split(usages: list[dict[str, int]]) -> str:
    """p50 and max input tokens per request, total input and the cached share."""
    per_request = [u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"] for u in usages]
    total = sum(per_request)
    cached = sum(u["cache_read_input_tokens"] for u in usages)
    return (
        f"input tokens per request p50 {statistics.median(per_request):,.0f}, max {max(per_request):,}; "
        f"total {total:,}; read from cache {cached / total:.0%}"
    )


def answered(slack: FakeSlack, thread_ts: str, turn: int) -> bool:
    """Whether the thread shows the answer to `turn` as its newest bot reply."""
    replies = slack.bot_replies(CHANNEL, thread_ts)
    return len(replies) == turn and str(replies[-1].get("text", "")).startswith(f"Answer to turn {turn}:")


async def thread_bytes(redis: Redis, ref: ThreadRef) -> int:
    """Redis memory of the thread's own keys (state with summary, window, inbox, queue flag)."""
    total = 0
    for key in (keys.state(ref), keys.turns(ref), keys.inbox(ref), keys.queued(ref)):
        total += await redis.memory_usage(key) or 0
    return total


async def run_bot(slack: FakeSlack, claude: FakeAnthropic, redis: Redis, workdir: Path) -> tuple[str, dict[int, int]]:
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": "bench",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "REDIS_URL": REDIS_URL,
        "PORT": str(free_port()),
        "DYNO": "bench.1",
        "LOG_LEVEL": "WARNING",
        "SYSTEM_PROMPT": SYSTEM_PROMPT,
    }
    bot = BotProcess(env, workdir)
    await bot.start()
    sizes: dict[int, int] = {}
    thread_ts: str | None = None
    try:
        for n in range(1, TURNS + 1):
            text = f"<@{slack.bot_user_id}> {question(n)}"
            envelope = slack.post_user_message(CHANNEL, text, user="U0BENCH", thread_ts=thread_ts, mention=True)
            thread_ts = thread_ts or envelope["event"]["ts"]
            await bot.post_event(envelope)
            await wait_until(lambda n=n, t=thread_ts: answered(slack, t, n), timeout=30, interval=0.005)
            if n in CHECKPOINTS:
                await asyncio.sleep(0.05)  # the task finishes (and folds) just after the reply shows
                sizes[n] = await thread_bytes(redis, ThreadRef(slack.team_id, CHANNEL, thread_ts))
    finally:
        await bot.kill()
    return thread_ts or "", sizes


async def run_naive(claude: FakeAnthropic, redis: Redis) -> tuple[list[dict[str, int]], dict[int, int]]:
    """The article's agent: the whole history in one state record, all of it sent on every turn."""
    client = anthropic.AsyncAnthropic(api_key="bench", base_url=claude.base_url, max_retries=0)
    history: list[dict[str, str]] = []
    usages: list[dict[str, int]] = []
    sizes: dict[int, int] = {}
    for n in range(1, TURNS + 1):
        history.append({"role": "user", "content": question(n)})
        message = await client.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=1500,
            system=SYSTEM_PROMPT,
            messages=history,  # type: ignore[arg-type]
        )
        usages.append(message.usage.model_dump())
        history.append({"role": "assistant", "content": message.content[0].text})  # type: ignore[union-attr]
        await redis.set("naive:state", json.dumps({"conversation_history": history}))
        if n in CHECKPOINTS:
            sizes[n] = await redis.memory_usage("naive:state") or 0
    await client.close()
    return usages, sizes


async def main() -> None:
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeSlack() as slack, FakeAnthropic() as claude:
            claude.set_default(respond)
            started = time.perf_counter()
            _, bot_sizes = await run_bot(slack, claude, redis, Path(tmp))
            bot_seconds = time.perf_counter() - started
            bot_usages = list(claude.usages)
        async with FakeAnthropic() as naive_claude:
            naive_claude.set_default(respond)
            naive_usages, naive_sizes = await run_naive(naive_claude, redis)
    await redis.aclose()
    answers = [u for u in bot_usages if not u["summary"]]
    folds = [u for u in bot_usages if u["summary"]]
    print(f"{TURNS} turns, ~400-token messages and ~300-token answers, budget 24,000 tokens")
    print(f"this bot ({bot_seconds:.0f} s): answers: {split(answers)}")
    print(f"  with the {len(folds)} summary calls: {split(bot_usages)}")
    print("  Redis bytes for the thread at turns " + ", ".join(f"{n}: {bot_sizes[n]:,}" for n in CHECKPOINTS))
    print(f"naive agent: {split(naive_usages)}")
    print("  Redis bytes for the conversation at turns " + ", ".join(f"{n}: {naive_sizes[n]:,}" for n in CHECKPOINTS))


if __name__ == "__main__":
    asyncio.run(main())
