"""Part 6: scaling out: mentions per second by worker processes, on standalone Redis and on a Redis Cluster.

A web process that only takes mentions in (`RUN_WORKERS_IN_WEB=false`) and 1, 2, then 4 `python -m bot worker`
processes (benchmarks/deployment.py) answer a batch of mentions with an instant model (the fake answers at once,
in one streamed chunk), so the figures are the bot's own work, not the model's. The same is done against the
private standalone Redis and against a local three-master Redis Cluster (started once for the part). Per backend:

- throughput: the batch sent at once, each mention a new thread, timed from the first send to the last answer;
- claim latency on an idle system: mentions sent one at a time, from each acknowledgement to the worker's first
  visible step on its task (the 👀 reaction, just after its START), and to the model request;
- an idle worker's Redis commands per second, by MONITOR on every node, with the default lease (30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import time
from collections import Counter
from typing import Any

from redis.asyncio import Redis, RedisCluster

from benchmarks.deployment import Deployment
from benchmarks.figures import PartResult
from benchmarks.harness import Bench, Lab, cpu_seconds, model_responder, pid_of
from benchmarks.redis_monitor import CommandTally
from benchmarks.scaling_measures import CLAIM_SPACING, IDLE_SECONDS, Backend, Batch
from benchmarks.scaling_report import ceiling, rows_and_notes
from benchmarks.settings import BenchSettings, ModelSpeed
from store.connection import RedisClient
from tests.fakes import Reply, user_texts
from tests.integration.redis_cluster import LocalCluster

INSTANT = ModelSpeed(latency=0.0, chunk_delay=0.0, chunk_chars=160, answer_chars=160)
WARM_UP_PER_WORKER = 5  # mentions answered after workers start, so that first-answer costs stay out of the timing
MENTION_NUMBER = re.compile(r"\back (\d+)\b")  # the load client's mention n says "ack n"


class ModelClock:
    """The instant model's responder, noting when each mention's first model request arrived."""

    def __init__(self) -> None:
        self._respond = model_responder(INSTANT)
        self.received: dict[int, float] = {}  # mention number -> time.monotonic() of its first request

    def respond(self, body: dict[str, Any]) -> Reply:
        """Note the request's arrival, then answer at once."""
        now = time.monotonic()  # one clock for every process on Linux: the load client's too
        found = MENTION_NUMBER.findall(" ".join(user_texts({"messages": body.get("messages", [])})))
        if found:
            self.received.setdefault(int(found[-1]), now)
        return self._respond(body)


async def run(lab: Lab) -> PartResult:
    """Standalone first, then the cluster (started now, stopped at the end)."""
    settings = lab.settings
    async with lab.session(INSTANT) as bench:
        standalone = await measure(bench, bench.redis, [bench.redis], settings, Backend("standalone"))
    cluster = LocalCluster(masters=3)
    await asyncio.to_thread(cluster.start)
    try:
        # The session's own client empties only the node its URL names; the new cluster is empty anyway.
        async with (
            lab.session(INSTANT, redis_url=cluster.url) as bench,
            RedisCluster.from_url(cluster.url, decode_responses=True) as client,
            contextlib.AsyncExitStack() as stack,
        ):
            nodes = [
                await stack.enter_async_context(Redis(port=master.port, decode_responses=True))
                for master in cluster.masters()
            ]
            clustered = await measure(bench, client, nodes, settings, Backend("cluster"))
    finally:
        await asyncio.to_thread(cluster.stop)
    result = PartResult("scaling", "Scaling out: worker processes, standalone Redis and a three-master cluster")
    result.rows, result.notes = rows_and_notes(standalone, clustered, settings)
    result.series = series(standalone, clustered, settings)
    return result


async def measure(
    bench: Bench, redis: RedisClient, nodes: list[Redis], settings: BenchSettings, backend: Backend
) -> Backend:
    """Claim latency with one worker, the batch with each number of workers (and the commands of a batch with one),
    then one worker left idle."""
    clock = ModelClock()
    bench.claude.set_default(clock.respond)
    deployment = Deployment(bench, redis)
    tag = backend.name[0].upper()
    redis_pids = [int((await node.info("server"))["process_id"]) for node in nodes]  # Redis runs on this machine
    await asyncio.gather(deployment.start_web(), deployment.scale_to(1))
    await warm_up(bench, deployment, f"C0{tag}WARM1")
    await claim_latency(bench, deployment, clock, f"C0{tag}CLAIM", settings.claim_mentions, backend)
    for workers in settings.scaling_workers:
        if workers > len(deployment.workers):
            await deployment.scale_to(workers)
            await warm_up(bench, deployment, f"C0{tag}WARM{workers}")
        backend.batches[workers] = await timed_batch(
            bench, deployment, redis_pids, f"C0{tag}BATCH{workers}", settings.scaling_mentions
        )
        if workers == settings.scaling_workers[0]:
            # After a batch: the connections a burst needs are open (on a cluster they open as needed), so the
            # count is of the mentions' commands, not of connection handshakes.
            await count_commands(bench, deployment, nodes, f"C0{tag}COUNT", settings.footprint_threads, backend)
    await deployment.keep_one_worker()
    await bench.quiet()
    backend.idle_sent, backend.idle_scripted = await idle_commands(nodes)
    await bench.kill_all()
    return backend


async def warm_up(bench: Bench, deployment: Deployment, channel: str) -> None:
    """A few mentions per worker, answered: the first answer of a process loads what it needs."""
    assert deployment.web is not None, "the web process runs"
    count = WARM_UP_PER_WORKER * len(deployment.workers)
    await bench.send(deployment.web, channel, count)
    await bench.answers.wait(channel, count, timeout=60)


async def timed_batch(bench: Bench, deployment: Deployment, redis_pids: list[int], channel: str, count: int) -> Batch:
    """`count` mentions at once, each a new thread: seconds from the first sent to the last answered, and the CPU
    each part of the machine used for them (until the processes are idle again)."""
    assert deployment.web is not None, "the web process runs"
    await bench.quiet()
    pids = (pid_of(deployment.web), [pid_of(worker) for worker in deployment.workers], redis_pids)
    before = cpu_used(*pids)
    started, _ = await bench.send(deployment.web, channel, count)
    finished = await bench.answers.wait(channel, count, timeout=60 + count * 0.5)
    await bench.quiet()  # a task finishes (usage, window, dequeue) just after its answer shows
    after = cpu_used(*pids)
    web, workers, redis, fakes, load = ((end - start) / count for start, end in zip(before, after, strict=True))
    return Batch(finished - started, web, workers, redis, fakes, load)


def cpu_used(web: int, workers: list[int], redis: list[int]) -> tuple[float, float, float, float, float]:
    """CPU seconds used so far by the web process, the workers, Redis, this process and its ended children.

    This process runs the fake Slack and Anthropic servers; during a batch the load client is its only child
    that ends, so the ended children's CPU grows by the load client's alone.
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        cpu_seconds(web),
        sum(cpu_seconds(pid) for pid in workers),
        sum(cpu_seconds(pid) for pid in redis),
        cpu_seconds(os.getpid()),
        children.ru_utime + children.ru_stime,
    )


async def claim_latency(
    bench: Bench, deployment: Deployment, clock: ModelClock, channel: str, count: int, backend: Backend
) -> None:
    """`count` mentions, CLAIM_SPACING apart: from each acknowledgement to its task's start and model request."""
    assert deployment.web is not None, "the web process runs"
    await bench.quiet()
    clock.received.clear()
    sent = await bench.send_mentions(deployment.web, channel, count, rate=1 / CLAIM_SPACING)
    await bench.answers.wait(channel, count, timeout=60)
    reacted = {
        str(call.args.get("timestamp")): call.received
        for call in bench.slack.calls
        if call.method == "reactions.add" and call.args.get("channel") == channel
    }
    backend.acks = sent.latencies
    backend.claim_started = [reacted[ts] - acked for ts, acked in zip(sent.ts, sent.acked, strict=True)]
    backend.claim_model = [clock.received[n] - acked for n, acked in enumerate(sent.acked)]


async def count_commands(
    bench: Bench, deployment: Deployment, nodes: list[Redis], channel: str, count: int, backend: Backend
) -> None:
    """Commands sent and run on every node while the workers answer `count` mentions at once."""
    assert deployment.web is not None, "the web process runs"
    await bench.quiet()
    async with contextlib.AsyncExitStack() as stack:
        tallies = [await stack.enter_async_context(CommandTally(node)) for node in nodes]
        await asyncio.gather(*(tally.take() for tally in tallies))
        started = time.monotonic()
        await bench.send(deployment.web, channel, count)
        await bench.answers.wait(channel, count, timeout=60 + count * 0.5)
        await bench.quiet()  # a task finishes (usage, window, dequeue) just after its answer shows
        counts = await asyncio.gather(*(tally.take() for tally in tallies))
    backend.counted, backend.counted_seconds = count, time.monotonic() - started
    backend.counted_workers = len(deployment.workers)
    backend.counted_sent, backend.counted_scripted = added(counts)


def added(counts: list[tuple[Counter[str], Counter[str]]]) -> tuple[Counter[str], Counter[str]]:
    """The (sent, scripted) counts of every node, added up."""
    sent: Counter[str] = Counter()
    scripted: Counter[str] = Counter()
    for node_sent, node_scripted in counts:
        sent += node_sent
        scripted += node_scripted
    return sent, scripted


async def idle_commands(nodes: list[Redis]) -> tuple[Counter[str], Counter[str]]:
    """Commands sent and run by scripts on every node over IDLE_SECONDS, with only an idle worker connected."""
    async with contextlib.AsyncExitStack() as stack:
        tallies = [await stack.enter_async_context(CommandTally(node)) for node in nodes]
        await asyncio.gather(*(tally.take() for tally in tallies))
        await asyncio.sleep(IDLE_SECONDS)
        counts = await asyncio.gather(*(tally.take() for tally in tallies))
    return added(counts)


def series(standalone: Backend, clustered: Backend, settings: BenchSettings) -> dict[str, Any]:
    """Everything measured, for the plot and results.json."""
    data: dict[str, Any] = {"workers": list(settings.scaling_workers), "mentions": settings.scaling_mentions}
    for backend in (standalone, clustered):
        data[backend.name] = {
            "batch_seconds": {str(k): batch.seconds for k, batch in backend.batches.items()},
            "per_second": {str(k): settings.scaling_mentions / batch.seconds for k, batch in backend.batches.items()},
            "ceiling": {str(k): ceiling(batch, k, os.cpu_count() or 1) for k, batch in backend.batches.items()},
            "worker_cpu_per_mention": {str(k): batch.worker_cpu for k, batch in backend.batches.items()},
            "web_cpu_per_mention": {str(k): batch.web_cpu for k, batch in backend.batches.items()},
            "redis_cpu_per_mention": {str(k): batch.redis_cpu for k, batch in backend.batches.items()},
            "fakes_cpu_per_mention": {str(k): batch.fakes_cpu for k, batch in backend.batches.items()},
            "load_cpu_per_mention": {str(k): batch.load_cpu for k, batch in backend.batches.items()},
            "claim_started": backend.claim_started,
            "claim_model": backend.claim_model,
            "acks": backend.acks,
            "idle_per_second": backend.idle_per_second,
            "idle_sent": dict(backend.idle_sent),
            "idle_scripted": dict(backend.idle_scripted),
            "counted_mentions": backend.counted,
            "counted_sent": dict(backend.counted_sent),
            "counted_scripted": dict(backend.counted_scripted),
            "sent_per_mention": backend.sent_per_mention,
            "run_per_mention": backend.run_per_mention,
        }
    data["cpus"] = os.cpu_count() or 1
    data["idle_seconds"] = IDLE_SECONDS
    data["claim_spacing"] = CLAIM_SPACING
    return data
