"""The scaling part's rows for the summary table and its notes, from what each Redis setup measured."""

from __future__ import annotations

import os
from collections import Counter

from benchmarks.figures import Row, secs
from benchmarks.footprint import PREVIOUS_RELEASE, TARGET_RUN_PER_MENTION
from benchmarks.scaling_measures import CLAIM_SPACING, IDLE_SECONDS, Backend, Batch
from benchmarks.settings import BenchSettings
from benchmarks.stats import percentile, ratio

LABELS = {"standalone": "standalone Redis", "cluster": "Redis Cluster (3 masters)"}


def per_second(backend: Backend, settings: BenchSettings, workers: int) -> float:
    """Mentions answered per second by `workers` worker processes."""
    return settings.scaling_mentions / backend.batches[workers].seconds


def processes(count: int) -> str:
    """'1 worker process', '2 worker processes'."""
    return f"{count} worker process{'es' if count > 1 else ''}"


def p50_p95(values: list[float]) -> str:
    """The median and 95th percentile of latencies in seconds, as milliseconds with one decimal."""
    return f"{percentile(values, 50) * 1000:.1f} ms / {percentile(values, 95) * 1000:.1f} ms"


def listed(counts: Counter[str], seconds: float) -> str:
    """'xautoclaim 3.2/s, xreadgroup 0.2/s': each command's rate, commonest first."""
    return ", ".join(f"{name.upper()} {calls / seconds:.1f}/s" for name, calls in counts.most_common()) or "none"


def mention_counts(backend: Backend, counts: Counter[str], idle: Counter[str]) -> str:
    """'hset 2.0, evalsha 6.0': each command per mention of the counted batch, idle commands taken off, commonest
    first."""
    share = backend.counted_workers * backend.counted_seconds / IDLE_SECONDS
    per = {name: (calls - idle[name] * share) / backend.counted for name, calls in counts.items()}
    shown = sorted(((value, name) for name, value in per.items() if value >= 0.05), reverse=True)
    return ", ".join(f"{name.upper()} {value:.1f}" for value, name in shown) or "none"


def ceiling(batch: Batch, workers: int, cpus: int) -> float:
    """The most mentions per second this machine's CPU allows: all its cores over the CPU a mention costs in all
    (bot, Redis, fakes, load client), and at most one core per worker process."""
    return min(cpus / batch.machine_cpu, workers / batch.worker_cpu)


def throughput_rows(standalone: Backend, clustered: Backend, settings: BenchSettings, cpus: int) -> list[Row]:
    """Mentions per second by worker processes, against the CPU ceiling of the same batch; one worker's rate and,
    for the cluster, standalone Redis's beside it."""
    first = settings.scaling_workers[0]
    rows: list[Row] = []
    for backend in (standalone, clustered):
        for workers in settings.scaling_workers:
            batch = backend.batches[workers]
            rate, most = per_second(backend, settings, workers), ceiling(batch, workers, cpus)
            reference = f"CPU ceiling: {most:.0f}/s"
            if workers != first:
                reference += f"; {processes(first)}: {per_second(backend, settings, first):.0f}/s"
            if backend is clustered:
                reference += f"; standalone: {per_second(standalone, settings, workers):.0f}/s"
            rows.append(
                Row(
                    f"{LABELS[backend.name]}: mentions answered per second, {processes(workers)}",
                    f"{rate:.0f}/s ({settings.scaling_mentions} in {secs(batch.seconds)})",
                    reference,
                    ratio(rate, most),
                )
            )
    return rows


def cpu_rows(standalone: Backend, clustered: Backend, settings: BenchSettings, cpus: int) -> list[Row]:
    """CPU per mention of each part of the machine, with the first number of workers; Redis's on a row of its own."""
    first = settings.scaling_workers[0]
    rows = []
    for backend in (standalone, clustered):
        batch = backend.batches[first]
        parts = (batch.worker_cpu, batch.web_cpu, batch.redis_cpu, batch.fakes_cpu + batch.load_cpu)
        rows.append(
            Row(
                f"{LABELS[backend.name]}: CPU per mention, {processes(first)}: worker / web process / Redis / "
                "fakes and load client",
                " / ".join(f"{part * 1000:.1f}" for part in parts) + " ms",
                f"a worker process's core answers ≤ {1 / batch.worker_cpu:.0f}/s; this machine's {cpus} cores, "
                f"everything included, ≤ {cpus / batch.machine_cpu:.0f}/s",
            )
        )
    for backend in (standalone, clustered):
        redis_cpu = backend.batches[first].redis_cpu
        rows.append(
            Row(
                f"{LABELS[backend.name]}: Redis CPU per mention (every node together)",
                f"{redis_cpu * 1e6:.0f} µs",
                f"one Redis core answers ≤ {1 / redis_cpu:,.0f} mentions/s",
            )
        )
    return rows


def idle_rows(standalone: Backend, clustered: Backend) -> list[Row]:
    """An idle worker's commands per second on each setup."""
    rows = []
    for backend in (standalone, clustered):
        counts = backend.idle_sent + backend.idle_scripted
        reference = listed(counts, IDLE_SECONDS)
        rate_ratio = None
        if backend is clustered:
            reference = f"standalone: {standalone.idle_per_second:.1f}/s; {reference}"
            rate_ratio = ratio(backend.idle_per_second, standalone.idle_per_second)
        rows.append(
            Row(
                f"{LABELS[backend.name]}: an idle worker's Redis commands per second (default lease, 30 s)",
                f"{backend.idle_per_second:.1f}/s",
                reference,
                rate_ratio,
            )
        )
    return rows


def command_rows(standalone: Backend, clustered: Backend) -> list[Row]:
    """Redis commands per mention on each setup: standalone against the previous release, the cluster against
    standalone; both against issue 16's target."""
    rows = []
    for backend in (standalone, clustered):
        previous_sent, previous_run = PREVIOUS_RELEASE
        reference = f"previous release (c36a3f8, standalone): {previous_sent} / {previous_run}"
        rate_ratio = ratio(backend.run_per_mention, previous_run)
        if backend is clustered:
            extra = backend.counted_sent["command"] / backend.counted
            reference = (
                f"standalone: {standalone.sent_per_mention:.0f} / {standalone.run_per_mention:.0f}; "
                f"of the sent, COMMAND GETKEYS: {extra:.1f}"
            )
            rate_ratio = ratio(backend.run_per_mention, standalone.run_per_mention)
        rows.append(
            Row(
                f"{LABELS[backend.name]}: Redis commands per mention, web + {processes(backend.counted_workers)}: "
                "sent / run",
                f"{backend.sent_per_mention:.0f} / {backend.run_per_mention:.0f}",
                reference,
                rate_ratio,
                f"≤ {TARGET_RUN_PER_MENTION} run",
                round(backend.run_per_mention) <= TARGET_RUN_PER_MENTION,
            )
        )
    return rows


def claim_rows(standalone: Backend, clustered: Backend) -> list[Row]:
    """Claim latency on an idle system, to the task's start; the model request and the ack itself beside it."""
    rows = []
    for backend in (standalone, clustered):
        reference = f"ack -> model request: {p50_p95(backend.claim_model)}; the ack itself: {p50_p95(backend.acks)}"
        rate_ratio = None
        if backend is clustered:
            reference = f"standalone: {p50_p95(standalone.claim_started)}; {reference}"
            rate_ratio = ratio(percentile(backend.claim_started, 50), percentile(standalone.claim_started, 50))
        rows.append(
            Row(
                f"{LABELS[backend.name]}: claim latency on an idle system, ack -> task started (👀), p50 / p95 "
                f"(n={len(backend.claim_started)})",
                p50_p95(backend.claim_started),
                reference,
                rate_ratio,
            )
        )
    return rows


def rows_and_notes(standalone: Backend, clustered: Backend, settings: BenchSettings) -> tuple[list[Row], list[str]]:
    """The part's rows and notes."""
    cpus = os.cpu_count() or 1
    rows = throughput_rows(standalone, clustered, settings, cpus) + cpu_rows(standalone, clustered, settings, cpus)
    rows += command_rows(standalone, clustered)
    rows += claim_rows(standalone, clustered) + idle_rows(standalone, clustered)
    workers = ", ".join(str(count) for count in settings.scaling_workers)
    batch = standalone.batches[settings.scaling_workers[0]]
    fakes_ms, worker_ms = (batch.fakes_cpu + batch.load_cpu) * 1000, batch.worker_cpu * 1000
    notes = [
        f"One web process (RUN_WORKERS_IN_WEB=false) acknowledges the mentions and records their tasks; {workers} "
        "`python -m bot worker` processes answer them; default settings otherwise (QUEUE_SHARDS 16, "
        "MAX_CONCURRENT_TASKS 200, TASK_LEASE_SECONDS 30). The fake model answers at once, 160 characters in one "
        f"streamed chunk. Each batch: {settings.scaling_mentions} mentions sent at once by another process, each a "
        "new thread, timed from the first sent to the last answer posted (seen within 10 ms); after workers are "
        "added, a few mentions per worker are answered untimed first.",
        f"This machine has {cpus} cores, shared by everything a mention touches: the web process, the workers, "
        "Redis (one server, or three cluster nodes), the load client and the fake Slack and Anthropic servers (the "
        "benchmark's own process). CPU per mention is read from /proc for each of them, from just before a batch "
        "is sent until the processes are idle again. The CPU ceiling of a batch is the most its CPU use allows: "
        "the cores over the CPU a mention cost everything together, and at most one core per worker process (a "
        "worker runs one event loop); the throughput ratio is the measured rate over it (CPU is counted until the "
        "processes are idle, wall time until the last answer, so a rate can pass its ceiling a little). With 2 "
        "cores a second worker adds only what is left of the second core once the web process, Redis and the fakes "
        "have theirs, "
        "and 4 workers cannot answer faster than 2: they share the same cores (here the fakes and the load client "
        f"took {fakes_ms:.1f} ms of CPU per mention, a worker {worker_ms:.1f} ms). So the rates say what one "
        "worker process answers per second of a "
        "core, not how far the design scales: on separate dynos each worker brings its own core, and Redis's "
        "CPU per mention says how many mentions a Redis core (a cluster master) takes. Throughput on a shared "
        "machine varies from run to run far more than CPU per mention does.",
        f"Claim latency: {settings.claim_mentions} mentions, one every {CLAIM_SPACING * 1000:.0f} ms, one worker (each "
        "mention finds it idle, blocked on the queue); from the acknowledgement reaching the load client to the "
        "fake Slack receiving the worker's 👀 reaction (its first call after the task's START), and to the fake "
        "model receiving the request (after the thread is read and the context built). The SUBMIT's XADD wakes the "
        "blocked XREADGROUP, so no polling interval is in it.",
        f"Idle: one worker process alone (web process and other workers stopped) for {IDLE_SECONDS:g} s, commands "
        "counted by MONITOR on every node, those run inside scripts included. TASK_LEASE_SECONDS is the default 30 "
        "s (the recovery part uses 5 s, where the lease keeper looks for stale work every 1.7 s instead of 5 s). "
        "On standalone Redis one blocking read waits on every shard; on the cluster there is one per shard, each "
        "timing out every 5 s.",
        f"Commands per mention: web process + {processes(standalone.counted_workers)}, after the batch they answered, "
        f"{standalone.counted} mentions at once, each a new thread, counted by MONITOR on every node until the "
        "processes are idle again, the idle workers' rate over that time taken off (the web process sends nothing "
        "while idle). On the cluster, redis-py's cluster client asks a node for the keys of every XREADGROUP (a "
        "command whose keys can sit anywhere in it) with COMMAND GETKEYS, twice per XREADGROUP; they count as sent. "
        + " ".join(
            f"{LABELS[b.name]}, per mention: sent {mention_counts(b, b.counted_sent, b.idle_sent)}; run inside "
            f"scripts {mention_counts(b, b.counted_scripted, b.idle_scripted)}."
            for b in (standalone, clustered)
        ),
    ]
    return rows, notes
