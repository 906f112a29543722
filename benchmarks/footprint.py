"""Part 5: what a mention costs the machine: Redis commands and bytes, the bot's CPU time and resident memory.

Redis figures come from the benchmark's private redis-server, so they are the bot's alone. Commands are
counted by MONITOR (benchmarks/redis_monitor.py): those the bot sent, and those its Lua scripts ran. The bot
polls Redis while idle, so the idle rate is measured first and taken off. Memory is read from /proc: VmRSS
idle, VmHWM (the peak) after a burst. CPU time is read from /proc too. The reference for memory and for the
CPU an acknowledgement costs is a Bolt app that only acknowledges, started the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from redis.asyncio import Redis

from benchmarks.figures import PartResult, Row
from benchmarks.harness import Bench, Lab, cpu_seconds, pid_of, resident_kib, with_database
from benchmarks.redis_monitor import CommandTally
from tests.integration.harness import BotProcess

IDLE_SECONDS = 5.0
FIRST_ROUND_SECONDS = 6.0  # a worker's first lease-keeper round (STALE_CHECK_SECONDS, 5 s) is over after this
# Redis commands per mention (sent, run) of the previous release, the layout before issue 16: measured by this part
# on the benchmark's 2-core machine at commit c36a3f8 on 2026-12-03 (the README's last full run before said 15 / 91).
PREVIOUS_RELEASE = (15, 100)
TARGET_RUN_PER_MENTION = 40  # issue 16: at most 40 commands run per mention, with no loss of fencing
ACK_LOAD, ACK_RATE = 400, 200.0  # mentions timed for CPU per acknowledgement, and their rate


async def used_memory(redis: Redis) -> int:
    """Bytes Redis holds for data and its own structures."""
    return int((await redis.info("memory"))["used_memory"])


def mib(kib: int) -> str:
    """KiB as MiB with one decimal."""
    return f"{kib / 1024:.1f} MiB"


def listed(counts: Counter[str], per: float) -> str:
    """'hset 16, evalsha 8, ...': the commonest commands, each divided by `per`."""
    return ", ".join(f"{name} {calls / per:.1f}" for name, calls in counts.most_common(8)) or "none"


async def ack_cpu(bench: Bench, process: BotProcess) -> float:
    """CPU seconds one acknowledgement costs `process`: ACK_LOAD mentions at ACK_RATE a second, after a warm-up."""
    pid = pid_of(process)
    await bench.send(process, f"C0WARM{pid}", 1, warm_up=True)
    await bench.quiet()
    before = cpu_seconds(pid)
    await bench.send(process, f"C0ACKCPU{pid}", ACK_LOAD, rate=ACK_RATE)
    return (cpu_seconds(pid) - before) / ACK_LOAD


async def acknowledging(bench: Bench) -> tuple[int, float, float]:
    """The Bolt app's resident KiB and CPU per acknowledgement, and the bot's web process's CPU per one.

    The web process runs without workers (RUN_WORKERS_IN_WEB=false) and on another Redis database, so the
    mentions it records are never answered: its CPU is the acknowledgement's alone.
    """
    floor = await bench.start({"DYNO": "floor.1"}, module="benchmarks.floor_app")
    floor_cpu = await ack_cpu(bench, floor)
    floor_kib, _ = resident_kib(pid_of(floor))
    web = await bench.start({"RUN_WORKERS_IN_WEB": "false", "REDIS_URL": with_database(bench.redis_url, 1)})
    web_cpu = await ack_cpu(bench, web)
    await bench.kill_all()
    return floor_kib, floor_cpu, web_cpu


async def run(lab: Lab) -> PartResult:
    """Floor first (alone), then the bot: idle, a batch of new threads, then the largest burst."""
    async with lab.session() as bench, CommandTally(bench.redis) as tally:
        return await measure(bench, tally, lab.settings.footprint_threads, max(lab.settings.concurrency))


async def measure(bench: Bench, tally: CommandTally, threads: int, burst: int) -> PartResult:
    """The figures of one session."""
    result = PartResult("footprint", "Footprint: Redis, CPU and memory")
    floor_kib, floor_cpu, ack_only_cpu = await acknowledging(bench)
    bot, ready = await bench.start(), time.monotonic()
    pid = pid_of(bot)
    await bench.send(bot, "C0WARM", 1)
    await bench.answers.wait("C0WARM", 1, timeout=60)
    await bench.quiet()
    idle_kib, _ = resident_kib(pid)
    # A worker's first lease-keeper round also removes stale consumers (then every 5 minutes): not idle work.
    await asyncio.sleep(max(0.0, ready + FIRST_ROUND_SECONDS - time.monotonic()))

    await tally.take()
    await asyncio.sleep(IDLE_SECONDS)
    idle_sent, idle_scripted = await tally.take()

    memory_before, cpu_before, started = await used_memory(bench.redis), cpu_seconds(pid), time.monotonic()
    await bench.send(bot, "C0BATCH", threads)
    await bench.answers.wait("C0BATCH", threads, timeout=120)
    await bench.quiet()  # a task finishes (usage, window, dequeue) just after its answer shows
    sent, scripted = await tally.take()
    idle_share = (time.monotonic() - started) / IDLE_SECONDS  # idle polling the batch's commands include
    cpu = (cpu_seconds(pid) - cpu_before) / threads
    bytes_per_thread = (await used_memory(bench.redis) - memory_before) / threads
    sent_per_mention = (sent.total() - idle_sent.total() * idle_share) / threads
    run_per_mention = sent_per_mention + (scripted.total() - idle_scripted.total() * idle_share) / threads

    await bench.send(bot, "C0BURST", burst)
    await bench.answers.wait("C0BURST", burst, timeout=60 + burst * 0.5)
    _, peak_kib = resident_kib(pid)

    idle_per_second = (idle_sent.total() + idle_scripted.total()) / IDLE_SECONDS
    result.rows = [
        Row("resident memory, idle", mib(idle_kib), f"Bolt app that only acks: {mib(floor_kib)}", idle_kib / floor_kib),
        Row(
            f"resident memory, peak ({burst} threads at once)",
            mib(peak_kib),
            f"bot idle: {mib(idle_kib)}",
            peak_kib / idle_kib,
        ),
        Row(
            "Redis commands per mention (ack to answer): sent / run",
            f"{sent_per_mention:.0f} / {run_per_mention:.0f}",
            f"previous release (c36a3f8): {PREVIOUS_RELEASE[0]} / {PREVIOUS_RELEASE[1]}; "
            f"idle: {idle_per_second:.1f} commands/s, taken off",
            run_per_mention / PREVIOUS_RELEASE[1],
            f"≤ {TARGET_RUN_PER_MENTION} run",
            round(run_per_mention) <= TARGET_RUN_PER_MENTION,
        ),
        Row(
            "Redis memory per new thread (one mention)",
            f"{bytes_per_thread:,.0f} bytes",
            "all its keys, task record too",
        ),
        Row(
            "bot CPU per acknowledgement (web process alone)",
            f"{ack_only_cpu * 1000:.2f} ms",
            f"Bolt app that only acks: {floor_cpu * 1000:.2f} ms",
            ack_only_cpu / floor_cpu,
        ),
        Row(
            "bot CPU per mention (ack + answer)",
            f"{cpu * 1000:.1f} ms",
            f"its acknowledgement: {ack_only_cpu * 1000:.2f} ms; one process answers ≤ {1 / cpu:.0f}/s",
            cpu / ack_only_cpu,
        ),
    ]
    result.series = {
        "floor_kib": floor_kib,
        "idle_kib": idle_kib,
        "peak_kib": peak_kib,
        "sent": dict(sent),
        "scripted": dict(scripted),
        "idle_commands_per_second": idle_per_second,
        "sent_per_mention": sent_per_mention,
        "run_per_mention": run_per_mention,
        "previous_release_per_mention": {"sent": PREVIOUS_RELEASE[0], "run": PREVIOUS_RELEASE[1]},
        "bytes_per_thread": bytes_per_thread,
        "cpu_per_mention": cpu,
        "cpu_per_ack": ack_only_cpu,
        "floor_cpu_per_ack": floor_cpu,
    }
    result.notes += [
        f"Redis commands per mention, {threads} mentions at once (each a new thread), by MONITOR. "
        f"Sent by the bot: {listed(sent, threads)}. Run inside its Lua scripts: {listed(scripted, threads)}. "
        f"Idle, per second: {listed(idle_sent + idle_scripted, IDLE_SECONDS)}.",
        "Sent counts each command of a pipeline; run adds the commands Redis ran inside scripts (EVALSHA). Ratio: "
        f"commands run against the previous release's {PREVIOUS_RELEASE[1]}, measured by this part at commit c36a3f8 "
        "(before issue 16's layout) on the same 2-core machine.",
        f"CPU per acknowledgement: {ACK_LOAD} mentions at {ACK_RATE:g}/s, the load client's keep-alive connections "
        "included; CPU per mention: from just before the batch is sent until the process is idle again.",
    ]
    return result
