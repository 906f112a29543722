"""The benchmark's knobs, read from BENCH_* environment variables so a run can be scaled without editing code.

The defaults are sized so that `make bench` finishes in well under 10 minutes on 2 cores; every figure is
measured beside its reference in the same run, so a smaller run is less precise but never biased.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _floats(name: str, default: str) -> tuple[float, ...]:
    return tuple(float(part) for part in os.environ.get(name, default).split(",") if part.strip())


def _ints(name: str, default: str) -> tuple[int, ...]:
    return tuple(int(part) for part in os.environ.get(name, default).split(",") if part.strip())


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class ModelSpeed:
    """How the fake Anthropic server answers: time to the first token, then text streamed chunk by chunk."""

    latency: float  # seconds before the first byte of the answer (the model's thinking time)
    chunk_delay: float  # seconds between streamed text chunks
    chunk_chars: int  # characters per streamed chunk
    answer_chars: int  # length of each answer

    @property
    def streaming_seconds(self) -> float:
        """How long the text of one answer takes to stream once it has started."""
        chunks = -(-self.answer_chars // self.chunk_chars)
        return chunks * self.chunk_delay

    @property
    def answer_seconds(self) -> float:
        """The model's own time for one answer: the floor of any bot's time to answer."""
        return self.latency + self.streaming_seconds


@dataclass(frozen=True)
class BenchSettings:
    """Sizes of every part; `from_env()` reads the overrides."""

    model: ModelSpeed = field(default_factory=lambda: ModelSpeed(2.0, 0.01, 8, 160))
    ack_rates: tuple[float, ...] = (10.0, 50.0, 200.0)  # mentions per second, open loop
    ack_seconds: float = 3.0  # how long each rate is kept up
    ack_min_count: int = 100  # at least this many mentions per rate, so a p99 means something
    ack_burst: int = 100  # and this many sent at once
    ack_rounds: int = 3  # rounds at the highest rate, whose p99 has a target
    concurrency: tuple[int, ...] = (10, 100, 500)  # threads mentioned at once
    lease_seconds: float = 5.0  # TASK_LEASE_SECONDS for the dead-consumer recovery
    repeats: int = 3  # repeats of each recovery measurement
    turns: int = 200  # length of the long thread
    footprint_threads: int = 100  # threads mentioned for the per-mention Redis figures
    scaling_workers: tuple[int, ...] = (1, 2, 4)  # worker processes the throughput batch is answered by
    scaling_mentions: int = 300  # mentions of each throughput batch, all at once, each a new thread
    claim_mentions: int = 30  # mentions timed for the claim latency, one at a time

    @classmethod
    def from_env(cls) -> BenchSettings:
        """Defaults, overridden by BENCH_* variables (see README, Performance)."""
        model = ModelSpeed(
            latency=_float("BENCH_MODEL_LATENCY", 2.0),
            chunk_delay=_float("BENCH_STREAM_CHUNK_DELAY", 0.01),
            chunk_chars=_int("BENCH_STREAM_CHUNK_CHARS", 8),
            answer_chars=_int("BENCH_ANSWER_CHARS", 160),
        )
        return cls(
            model=model,
            ack_rates=_floats("BENCH_ACK_RATES", "10,50,200"),
            ack_seconds=_float("BENCH_ACK_SECONDS", 3.0),
            ack_min_count=_int("BENCH_ACK_MIN_COUNT", 100),
            ack_burst=_int("BENCH_ACK_BURST", 100),
            ack_rounds=_int("BENCH_ACK_ROUNDS", 3),
            concurrency=_ints("BENCH_CONCURRENCY", "10,100,500"),
            lease_seconds=_float("BENCH_LEASE_SECONDS", 5.0),
            repeats=_int("BENCH_REPEATS", 3),
            turns=_int("BENCH_TURNS", 200),
            footprint_threads=_int("BENCH_FOOTPRINT_THREADS", 100),
            scaling_workers=_ints("BENCH_SCALING_WORKERS", "1,2,4"),
            scaling_mentions=_int("BENCH_SCALING_MENTIONS", 300),
            claim_mentions=_int("BENCH_CLAIM_MENTIONS", 30),
        )

    def ack_count(self, rate: float) -> int:
        """Mentions sent at `rate` per second."""
        return max(self.ack_min_count, round(rate * self.ack_seconds))
