"""Benchmark: how fast work resumes and how fast Slack is acknowledged. Prints figures; asserts nothing.

    .venv/bin/python -m benchmarks.durability          (needs a Redis on 127.0.0.1:6379; uses database 10)

Runs the real `python -m bot` processes against the local fake Slack and Anthropic servers of tests/fakes.
Measures, each BENCH_REPEATS times (default 3), reported as the median and every run's figure:
  1. restart -> first step of a resumed task, same DYNO (target < 2 s)
  2. a dead consumer's task -> first step on another process (target lease + 5 s)
  3. acknowledgement latency of 100 mentions sent at once, p50 / p99 (target p99 < 100 ms), beside a Bolt app
     that only acknowledges (the floor any Bolt app has on this machine)
  4. wall time for 100 threads answered at once with a 2 s model latency (target < 5 s)
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis

from tests.fakes import FakeAnthropic, FakeSlack, Reply, app_mention_event, event_envelope
from tests.integration.harness import SIGNING_SECRET, BotProcess, free_port

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
LEASE_SECONDS = float(os.environ.get("BENCH_LEASE_SECONDS", "5"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CHANNEL = "C0BENCH"
T = TypeVar("T")


class Bench:
    """The fakes, a clean Redis database, and a way to start bot processes."""

    def __init__(self, slack: FakeSlack, claude: FakeAnthropic, workdir: Path) -> None:
        self.slack, self.claude, self.workdir = slack, claude, workdir
        self.bots: list[BotProcess] = []

    def bot(self, **env: str) -> BotProcess:
        base = {
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "ANTHROPIC_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": self.claude.base_url,
            "REDIS_URL": REDIS_URL,
            "PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            "TASK_LEASE_SECONDS": str(LEASE_SECONDS),
        }
        bot = BotProcess({**base, **env}, self.workdir)
        self.bots.append(bot)
        return bot

    def mention(self, text: str) -> dict[str, Any]:
        event = app_mention_event(f"<@{self.slack.bot_user_id}> {text}", user="U0BENCH", channel=CHANNEL)
        return event_envelope(event, team_id=self.slack.team_id)

    async def cleanup(self) -> None:
        for bot in self.bots:
            if bot.process is not None and bot.process.returncode is None:
                await bot.kill()


async def poll(predicate: Any, timeout: float = 60.0) -> float:
    """Seconds until predicate() is true, polled every 5 ms."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def resume_time(bench: Bench, *, same_dyno: bool) -> float:
    """Kill a bot mid-answer and time from the next process's spawn to the resumed task's next model call."""
    bench.claude.reply_text("never", gate=asyncio.Event())
    first = bench.bot(DYNO="bench.1")
    await first.start()
    await first.post_event(bench.mention("resume me"))
    calls = len(bench.claude.requests) + 1
    await poll(lambda: len(bench.claude.requests) >= calls)
    if not same_dyno:
        # The survivor runs already; the dead consumer's lease has to run out before it may take the work.
        survivor = bench.bot(DYNO="bench.2")
        await survivor.start()
    await first.kill()
    started = time.perf_counter()
    if same_dyno:
        restarted = bench.bot(DYNO="bench.1")
        await restarted.start(wait_ready=False)
    await poll(lambda: len(bench.claude.requests) > calls)
    elapsed = time.perf_counter() - started
    await bench.cleanup()
    return elapsed


async def import_seconds(module: str) -> float:
    """How long a fresh interpreter takes to start and import `module` (bytecode already compiled)."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", f"import {module}")
    await process.wait()
    return time.perf_counter() - started


AckSetup = Literal["floor", "web", "web+worker"]


async def ack_latencies(bench: Bench, setup: AckSetup, count: int = 100) -> list[float]:
    """Send `count` signed mentions at once from another process; the time each takes to be acknowledged.

    "floor" is a Bolt app that only acknowledges; "web" the bot with its workers in the web process;
    "web+worker" the bot's web process with a separate worker process.
    """
    if setup == "web+worker":
        worker = BotProcess({**bench.bot().env, "DYNO": "worker.1"}, bench.workdir, args=("worker",))
        bench.bots.append(worker)
        await worker.start(wait_ready=False)
    if setup == "floor":
        bot = BotProcess(bench.bot().env, bench.workdir, module="benchmarks.floor_app")
        bench.bots.append(bot)
    else:
        bot = bench.bot(DYNO="bench.1", RUN_WORKERS_IN_WEB="false" if setup == "web+worker" else "true")
    await bot.start()
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.ack_client",
        f"{bot.url}/slack/events",
        bench.slack.team_id,
        bench.slack.bot_user_id,
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await client.communicate()
    await bench.cleanup()
    latencies: list[float] = json.loads(output)
    return latencies


async def concurrent_answers(bench: Bench, count: int = 100, model_latency: float = 2.0) -> float:
    """Mentions in `count` threads at once with a slow model: seconds until every thread has its answer."""
    bench.claude.set_default(lambda body: Reply([{"type": "text", "text": "done"}], "end_turn", delay=model_latency))
    bot = bench.bot(DYNO="bench.1")
    await bot.start()
    envelopes = [bench.mention(f"thread {n}") for n in range(count)]
    started = time.perf_counter()
    await asyncio.gather(*(bot.post_event(envelope) for envelope in envelopes))

    def all_answered() -> bool:
        return all(
            [m.get("text") for m in bench.slack.bot_replies(CHANNEL, e["event"]["ts"])] == ["done"] for e in envelopes
        )

    await poll(all_answered)
    elapsed = time.perf_counter() - started
    await bench.cleanup()
    return elapsed


async def fresh(workdir: Path) -> tuple[FakeSlack, FakeAnthropic, Bench]:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()
    slack, claude = FakeSlack(), FakeAnthropic()
    slack.add_user("U0BENCH", "bench", real_name="Bench User", display_name="bench")  # a real user has a name
    await slack.start()
    await claude.start()
    return slack, claude, Bench(slack, claude, workdir)


async def repeated(workdir: Path, run: Callable[[Bench], Awaitable[T]]) -> list[T]:
    """Run one measurement REPEATS times, each on fresh fakes and an emptied database."""
    results: list[T] = []
    for _ in range(REPEATS):
        slack, claude, bench = await fresh(workdir)
        try:
            results.append(await run(bench))
        finally:
            await bench.cleanup()
            await slack.stop()
            await claude.stop()
    return results


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    """The median, and the range over the runs."""
    scaled = sorted(value * scale for value in values)
    digits = 0 if unit == "ms" else 2
    return f"{statistics.median(scaled):.{digits}f} {unit} (runs: {', '.join(f'{v:.{digits}f}' for v in scaled)})"


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[max(int(len(ordered) * 0.99) - 1, 0)]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines: list[str] = [f"median of {REPEATS} runs each"]
        same = await repeated(workdir, lambda b: resume_time(b, same_dyno=True))
        lines.append(f"resume, same DYNO (restart -> next model call): {spread(same, 's')}")
        dead = await repeated(workdir, lambda b: resume_time(b, same_dyno=False))
        lines.append(
            f"resume, dead consumer (kill -> model call on another; lease {LEASE_SECONDS:.0f} s): {spread(dead, 's')}"
        )
        setups: list[tuple[str, AckSetup]] = [
            ("a Bolt app that only acknowledges (the floor)", "floor"),
            ("the bot, workers in the web process", "web"),
            ("the bot, web process with a separate worker", "web+worker"),
        ]
        for label, setup in setups:
            runs = await repeated(workdir, functools.partial(ack_latencies, setup=setup))
            lines.append(
                f"ack latency, 100 mentions at once, {label}: "
                f"p50 {spread([statistics.median(run) for run in runs], 'ms', 1000)}, "
                f"p99 {spread([p99(run) for run in runs], 'ms', 1000)}"
            )
        answered = await repeated(workdir, concurrent_answers)
        lines.append(f"100 threads at once, 2 s model latency: all answered in {spread(answered, 's')}")
        baseline = await import_seconds("anthropic") - await import_seconds("json")
        lines.append(f"(importing the anthropic SDK alone takes {baseline:.2f} s of each process start here)")
        print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
