"""What the scaling part measures on each Redis setup, and the sizes of the measurements its notes describe."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# An idle worker works in 5 s rounds (STALE_CHECK_SECONDS, and the blocking reads' 5 s timeout): two whole ones.
IDLE_SECONDS = 10.0
CLAIM_SPACING = 0.25  # seconds between the mentions timed for claim latency: each finds the workers idle


@dataclass(frozen=True)
class Batch:
    """One timed batch: its wall time, and the CPU seconds per mention of the web process, of the workers together,
    of Redis (every node together), of the fake Slack and Anthropic servers, and of the load client."""

    seconds: float
    web_cpu: float
    worker_cpu: float
    redis_cpu: float
    fakes_cpu: float
    load_cpu: float

    @property
    def machine_cpu(self) -> float:
        """CPU seconds per mention of everything on the machine that took part."""
        return self.web_cpu + self.worker_cpu + self.redis_cpu + self.fakes_cpu + self.load_cpu


@dataclass
class Backend:
    """What one Redis setup measured."""

    name: str  # "standalone" or "cluster"
    batches: dict[int, Batch] = field(default_factory=dict)  # by the number of worker processes
    claim_started: list[float] = field(default_factory=list)  # acknowledgement -> 👀 reaction, seconds
    claim_model: list[float] = field(default_factory=list)  # acknowledgement -> model request, seconds
    acks: list[float] = field(default_factory=list)  # those mentions' acknowledgement latencies
    idle_sent: Counter[str] = field(default_factory=Counter)  # an idle worker's commands over IDLE_SECONDS
    idle_scripted: Counter[str] = field(default_factory=Counter)
    counted: int = 0  # mentions of the batch whose commands were counted (web process + the first workers)
    counted_workers: int = 1  # worker processes then
    counted_seconds: float = 0.0  # how long the count ran: the idle workers' share of it is taken off
    counted_sent: Counter[str] = field(default_factory=Counter)
    counted_scripted: Counter[str] = field(default_factory=Counter)

    @property
    def idle_per_second(self) -> float:
        """An idle worker's commands per second, those its scripts ran included."""
        return (self.idle_sent.total() + self.idle_scripted.total()) / IDLE_SECONDS

    def per_mention(self, counts: Counter[str], idle: Counter[str]) -> float:
        """Commands per mention of the counted batch, the idle workers' rate over the count taken off."""
        idle_share = self.counted_workers * self.counted_seconds / IDLE_SECONDS
        return (counts.total() - idle.total() * idle_share) / self.counted

    @property
    def sent_per_mention(self) -> float:
        """Commands the processes sent per mention."""
        return self.per_mention(self.counted_sent, self.idle_sent)

    @property
    def run_per_mention(self) -> float:
        """Commands Redis ran per mention: those sent, and those run inside scripts."""
        return self.sent_per_mention + self.per_mention(self.counted_scripted, self.idle_scripted)
