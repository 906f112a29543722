"""Part 2: K threads mentioned at once, each answer taking the model L seconds: how long until all are answered.

A thread's agent spends nearly all its time waiting for the model, so one process should answer many threads
in about the time of one. The reference is L itself (no bot can answer faster than its model) and, measured in
the same run, one thread answered alone. One process, default settings: MAX_CONCURRENT_TASKS (200) caps the
threads worked at once, so K above it answers in waves by design.
"""

from __future__ import annotations

from benchmarks.figures import PartResult, Row, secs
from benchmarks.harness import Bench, Lab
from benchmarks.settings import BenchSettings
from benchmarks.stats import ratio
from tests.integration.harness import BotProcess

MAX_CONCURRENT_TASKS = 200  # the bot's default, set explicitly so the bound below holds
TARGET_K = 100
TARGET_RATIO = 2.5


async def wall_time(bench: Bench, bot: BotProcess, channel: str, count: int) -> tuple[float, float]:
    """Mention `count` new threads at once; seconds until the last is answered, and the slowest acknowledgement."""
    await bench.quiet()
    started, acks = await bench.send(bot, channel, count)
    finished = await bench.answers.wait(channel, count, timeout=60 + count * 0.5)
    return finished - started, max(acks)


async def run(lab: Lab) -> PartResult:
    """One bot process, warmed up, then each K in turn (after a single thread alone, the reference)."""
    async with lab.session() as bench:
        return await measure(bench, lab.settings)


async def measure(bench: Bench, settings: BenchSettings) -> PartResult:
    """The figures of one session."""
    speed = settings.model
    latency = speed.latency
    result = PartResult("concurrency", f"Concurrency: K threads at once, model latency L = {latency:g} s")
    bot = await bench.start({"MAX_CONCURRENT_TASKS": str(MAX_CONCURRENT_TASKS)})
    await wall_time(bench, bot, "C0WARM", 1)  # the first answer of a process loads what it needs: keep it out
    alone, _ = await wall_time(bench, bot, "C0K1", 1)
    reference = f"L = {secs(latency)}; 1 thread alone: {secs(alone)}"
    series: list[dict[str, float]] = [{"k": 1, "wall": alone, "ack_max": 0.0}]
    for k in settings.concurrency:
        wall, slowest_ack = await wall_time(bench, bot, f"C0K{k}", k)
        waves = -(-k // MAX_CONCURRENT_TASKS)
        bound = (
            f"; {waves} waves of {MAX_CONCURRENT_TASKS}: ≥ {secs(waves * speed.answer_seconds)}" if waves > 1 else ""
        )
        target, met = "", None
        if k == TARGET_K:
            target, met = f"< {TARGET_RATIO:g} L", wall < TARGET_RATIO * latency
        result.rows.append(
            Row(f"{k} threads at once: all answered", secs(wall), reference + bound, ratio(wall, latency), target, met)
        )
        series.append({"k": k, "wall": wall, "ack_max": slowest_ack})
    result.series = {
        "latency": latency,
        "streaming": speed.streaming_seconds,
        "max_concurrent": MAX_CONCURRENT_TASKS,
        "alone": alone,
        "runs": series,
    }
    result.notes.append(
        f"Ratio: wall time / L. Each answer is {speed.answer_chars} characters streamed in "
        f"{speed.streaming_seconds:.2f} s after L; one process, MAX_CONCURRENT_TASKS {MAX_CONCURRENT_TASKS}, "
        "REDIS_MAX_CONNECTIONS 100 (the default). Wall time runs from the first mention sent to the last answer "
        "posted in full."
    )
    return result
