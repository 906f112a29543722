"""Every metric the bot exposes at GET /metrics, defined once here; the other layers import this module and count.

    from bot.core import metrics
    metrics.MENTIONS.labels(outcome="refused", reason="rate_limit").inc()

Each process keeps its own counts in memory and serves them itself, as Prometheus expects of several processes
(no multiprocess mode: a restart starts the counters again at 0, which rate() and increase() allow for). Every
sample is exposed with a `dyno` label (the process's consumer name, DYNO as a rule), so that the processes of one
deployment stay apart even when they are scraped through one address, as Heroku's router does with web dynos.

Label values come from short fixed lists, never from people, threads or workspaces: each distinct label set is a
series Prometheus keeps.
    MENTIONS        outcome: accepted, duplicate (Slack delivered the same event again), refused;
                    reason: "none" for accepted and duplicate; for refused, one short word per refusing check, from
                    a fixed list: not_allowed, rate_limit, bot_turns (bot/tasks/gate.py), permission and budget
                    (bot/tasks/intake.py, bot/tasks/answer.py)
    TASKS           kind: the task kind (answer, note, greet, status, reset, channel_reset...);
                    outcome: done, failed, stopped (a task a reset cancels is not counted: it never finishes)
    MODEL_CALLS     model; outcome: ok, error
    MODEL_TOKENS    model; kind: input (uncached), output, cache_read, cache_write
    RETRIES         service: anthropic, slack; reason: the error's name (anthropic) or rate_limited, server_error,
                    connection_error (slack)
    REDIS_ERRORS    where: intake, runner (a thread's work), queue_reader, lease_keeper, metrics (a scrape)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

PREFIX = "slack_agent"

REGISTRY = CollectorRegistry()
# CPU seconds, resident memory, open files and start time of this process (read from /proc on Linux at each scrape).
ProcessCollector(registry=REGISTRY)

MENTIONS = Counter(
    f"{PREFIX}_mentions",
    "Messages addressed to the bot, by what intake did with them.",
    ["outcome", "reason"],
    registry=REGISTRY,
)
TASKS = Counter(f"{PREFIX}_tasks", "Tasks finished, by kind and outcome.", ["kind", "outcome"], registry=REGISTRY)
# Slack wants an answer within 3 seconds and retries the event after that: the buckets are dense below it.
ACK_SECONDS = Histogram(
    f"{PREFIX}_ack_seconds",
    "From a Slack request's (or Socket Mode envelope's) arrival to the bot's acknowledgement of it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
    registry=REGISTRY,
)
FIRST_TEXT_SECONDS = Histogram(
    f"{PREFIX}_first_text_seconds",
    "From a mention's intake to the first words of its answer sent to Slack.",
    buckets=(0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
ANSWER_SECONDS = Histogram(
    f"{PREFIX}_answer_seconds",
    "From a mention's intake to its whole answer posted in Slack.",
    buckets=(1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    registry=REGISTRY,
)
MODEL_CALLS = Counter(
    f"{PREFIX}_model_calls",
    "Claude calls (each after its retries), by model and outcome.",
    ["model", "outcome"],
    registry=REGISTRY,
)
MODEL_TOKENS = Counter(
    f"{PREFIX}_model_tokens",
    "Tokens of Claude calls as the API reports them, by model and kind.",
    ["model", "kind"],
    registry=REGISTRY,
)
MODEL_COST_USD = Counter(
    f"{PREFIX}_model_cost_usd",
    "Estimated cost of Claude calls in US dollars, from list prices (bot/agent/pricing.py).",
    ["model"],
    registry=REGISTRY,
)
RETRIES = Counter(
    f"{PREFIX}_retries",
    "Calls tried again after a transient failure, by service and reason.",
    ["service", "reason"],
    registry=REGISTRY,
)
QUEUE_WAITING = Gauge(
    f"{PREFIX}_queue_waiting_threads",
    "Threads with work that no worker has taken yet, in all shards (read from Redis at each scrape).",
    registry=REGISTRY,
)
QUEUE_RUNNING = Gauge(
    f"{PREFIX}_queue_running_threads",
    "Threads a worker holds (working, or dead and waiting for its lease to run out), in all shards.",
    registry=REGISTRY,
)
QUEUE_OLDEST_SECONDS = Gauge(
    f"{PREFIX}_queue_oldest_wait_seconds",
    "How long the oldest thread no worker has taken yet has waited (0 when none waits).",
    registry=REGISTRY,
)
ACTIVE_THREADS = Gauge(f"{PREFIX}_active_threads", "Threads this process is working on now.", registry=REGISTRY)
LEASE_TAKEOVERS = Counter(
    f"{PREFIX}_lease_takeovers", "Threads taken over from a worker that stopped renewing its lease.", registry=REGISTRY
)
REDIS_ERRORS = Counter(
    f"{PREFIX}_redis_errors",
    "Redis commands that failed (down, failing over, refusing writes).",
    ["where"],
    registry=REGISTRY,
)


def since(start: float) -> float:
    """Seconds from `start` (a time.time() value, as tasks record it) to now; never negative (clocks differ)."""
    return max(time.time() - start, 0.0)


class Labelled(Collector):
    """The registry's metrics with one more label on every sample (the process's `dyno`)."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self._registry = registry
        self._labels = labels

    def collect(self) -> Iterable[Metric]:
        """Each metric of the registry, copied with the labels added to its samples."""
        for metric in self._registry.collect():
            yield self._labelled(metric)

    def _labelled(self, metric: Metric) -> Metric:
        copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
        copy.samples = list(self._samples(metric))
        return copy

    def _samples(self, metric: Metric) -> Iterator[Sample]:
        for sample in metric.samples:
            yield sample._replace(labels={**sample.labels, **self._labels})
