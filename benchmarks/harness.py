"""One benchmark session: a private Redis, fresh fake Slack and Anthropic servers, and real bot processes.

The Redis is a redis-server of the benchmark's own on a free port, never the shared 127.0.0.1:6379: its
command counts and memory are the bot's alone, and runs never meet other users of the machine. The fakes run
in this process; the load (signed Slack events) comes from another process (`benchmarks.ack_client`) so
neither the fakes' work nor the load generator's skews the other's timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from redis.asyncio import Redis

from benchmarks.settings import BenchSettings, ModelSpeed
from tests.fakes import FakeAnthropic, FakeSlack, Reply
from tests.integration.harness import REPO_ROOT, SIGNING_SECRET, BotProcess, free_port

BENCH_USER = "U0BENCH"
QUIET_WINDOW = 0.25  # seconds over which a process's CPU use is sampled to call it idle


def with_database(url: str, database: int) -> str:
    """The same Redis URL with another database number (redis://host:port/N)."""
    return f"{url.rsplit('/', 1)[0]}/{database}"


def answer_text(speed: ModelSpeed) -> str:
    """The fake model's answer: recognisable, and `speed.answer_chars` long."""
    return ("Benchmark answer. " * (speed.answer_chars // 18 + 1))[: speed.answer_chars].strip()


def model_responder(speed: ModelSpeed) -> Callable[[dict[str, Any]], Reply]:
    """A responder for FakeAnthropic.set_default that answers after `speed.latency`, streaming at `speed`."""
    text = answer_text(speed)

    def respond(body: dict[str, Any]) -> Reply:
        return Reply(
            [{"type": "text", "text": text}],
            delay=speed.latency,
            chunk_delay=speed.chunk_delay,
            chunk_size=speed.chunk_chars,
        )

    return respond


class AnswerWatch:
    """Notices final answers as the fake Slack receives them, without rescanning its whole message store."""

    def __init__(self, slack: FakeSlack, text: str) -> None:
        self._slack = slack
        self._text = text
        self._seen = 0
        self.answered: dict[tuple[str, str], float] = {}  # (channel, message or thread ts) -> time.monotonic()

    def poll(self) -> None:
        """Record the final answers among the Web API calls received since the last poll."""
        calls = self._slack.calls
        now = time.monotonic()
        for call in calls[self._seen :]:
            if call.method not in ("chat.update", "chat.postMessage"):
                continue
            if (call.args.get("markdown_text") or call.args.get("text")) != self._text:
                continue
            key = (str(call.args.get("channel")), str(call.args.get("ts") or call.args.get("thread_ts")))
            self.answered.setdefault(key, now)
        self._seen = len(calls)

    def count(self, channel: str) -> int:
        """Final answers seen in `channel`."""
        self.poll()
        return sum(1 for key in self.answered if key[0] == channel)

    def last(self, channel: str) -> float:
        """When the last final answer of `channel` was seen."""
        return max(at for key, at in self.answered.items() if key[0] == channel)

    async def watch(self) -> None:
        """Poll every 10 ms until cancelled, so each answer's time is known to within 10 ms."""
        while True:
            self.poll()
            await asyncio.sleep(0.01)

    async def wait(self, channel: str, count: int, timeout: float) -> float:
        """Wait until `channel` has `count` final answers; returns when the last one was seen."""
        deadline = time.monotonic() + timeout
        while self.count(channel) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count(channel)} of {count} answers in {channel} after {timeout} s")
            await asyncio.sleep(0.01)
        return self.last(channel)


class Bench:
    """Fresh fakes on an emptied Redis, and the bot processes started against them (killed on exit)."""

    def __init__(self, redis_url: str, workdir: Path, speed: ModelSpeed) -> None:
        self.redis_url = redis_url
        self.workdir = workdir
        self.speed = speed
        self.slack = FakeSlack()
        # The parts measure the answer path every workspace has (👀, a posted message updated), comparable from
        # release to release; `first_text` sets up its own workspaces, with and without the agent features.
        self.slack.agent_features = False
        self.claude = FakeAnthropic()
        self.redis: Redis = Redis.from_url(redis_url, decode_responses=True)
        self.processes: list[BotProcess] = []
        self.answers = AnswerWatch(self.slack, answer_text(speed))
        self._watching: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.redis.flushall()  # every database: a part may use more than one
        self.slack.add_user(BENCH_USER, "bench", real_name="Bench User", display_name="bench")
        self.claude.set_default(model_responder(self.speed))
        await self.slack.start()
        await self.claude.start()
        self._watching = asyncio.create_task(self.answers.watch())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._watching is not None:
            self._watching.cancel()
        await self.kill_all()
        await self.slack.stop()
        await self.claude.stop()
        await self.redis.aclose()

    def env(self, **overrides: str) -> dict[str, str]:
        """The bot's settings: pointed at the fakes and the private Redis, quiet logs."""
        return {
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "ANTHROPIC_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": self.claude.base_url,
            "REDIS_URL": self.redis_url,
            "PORT": str(free_port()),
            "DYNO": "bench.1",
            "LOG_LEVEL": "WARNING",
            **overrides,
        }

    async def start(
        self,
        env: dict[str, str] | None = None,
        *,
        module: str = "bot",
        args: tuple[str, ...] = (),
        wait_ready: bool = True,
    ) -> BotProcess:
        """Start `python -m bot` (or the floor app with module=...) with `env` on top of the defaults.

        By default it waits until /healthz answers.
        """
        process = BotProcess(self.env(**(env or {})), self.workdir, args=args, module=module)
        self.processes.append(process)
        await process.start(wait_ready=wait_ready, timeout=60)
        return process

    async def kill_all(self) -> None:
        """SIGKILL every process this session started that still runs (by its pid)."""
        for process in self.processes:
            if process.process is not None and process.process.returncode is None:
                await process.kill()
        self.processes.clear()

    async def quiet(self, timeout: float = 20.0) -> None:
        """Wait until every process started here uses under a tenth of a core, so no work spills into the next timing.

        A task goes on for a moment after its answer is posted (usage, window, dequeue), and a batch of hundreds
        for longer: without this, one setup's finishing work would be timed as part of the next one's load.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [pid_of(p) for p in self.processes if p.process is not None and p.process.returncode is None]
            before = [cpu_seconds(pid) for pid in running]
            await asyncio.sleep(QUIET_WINDOW)
            used = [cpu_seconds(pid) - cpu for pid, cpu in zip(running, before, strict=True)]
            if all(seconds < QUIET_WINDOW / 10 for seconds in used):
                return

    def mention(self, text: str, channel: str) -> dict[str, Any]:
        """The Events API envelope of a mention that starts a new thread, its message stored in the fake Slack as
        real Slack has every message it announces (a retried task reads its thread back)."""
        return self.slack.post_user_message(
            channel, f"<@{self.slack.bot_user_id}> {text}", user=BENCH_USER, mention=True
        )

    async def send(
        self, target: BotProcess, channel: str, count: int, *, rate: float = 0.0, warm_up: bool = False
    ) -> tuple[float, list[float]]:
        """Send `count` mentions from another process (all at once, or `rate` a second).

        Returns when sending began (time.monotonic(), which is one clock for all processes on Linux) and each
        mention's acknowledgement latency in seconds.
        """
        sent = await self.send_mentions(target, channel, count, rate=rate, warm_up=warm_up)
        return sent.started, sent.latencies

    async def send_mentions(
        self, target: BotProcess, channel: str, count: int, *, rate: float = 0.0, warm_up: bool = False
    ) -> Sent:
        """`send`, with when each mention was acknowledged and its ts (the text of mention n ends in "ack n")."""
        envelopes = [self.mention(f"ack {n}", channel) for n in range(-1 if warm_up else 0, count)]  # -1: warm-up
        events = self.workdir / f"mentions-{channel}-{time.monotonic_ns()}.json"
        events.write_text(json.dumps(envelopes))
        command = [sys.executable, "-m", "benchmarks.ack_client", f"{target.url}/slack/events", str(events)]
        command += ["--rate", str(rate)] + (["--warm-up"] if warm_up else [])
        client = await asyncio.create_subprocess_exec(*command, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE)
        output, _ = await client.communicate()
        events.unlink()
        if client.returncode != 0:
            raise RuntimeError(f"ack client failed with exit code {client.returncode}")
        result = json.loads(output)
        return Sent(
            started=float(result["started"]),
            latencies=[float(x) for x in result["latencies"]],
            acked=[float(x) for x in result["acked"]],
            ts=[str(x) for x in result["ts"]],
        )


@dataclass(frozen=True)
class Sent:
    """Mentions sent by the load client: when sending began, and per mention (in the order made) its
    acknowledgement latency, when the acknowledgement arrived (time.monotonic()) and the mention's ts."""

    started: float
    latencies: list[float]
    acked: list[float]
    ts: list[str]


class Lab:
    """What every part gets: the private Redis, a scratch folder and the settings; sessions are made from it."""

    def __init__(self, redis_url: str, workdir: Path, settings: BenchSettings) -> None:
        self.redis_url = redis_url
        self.workdir = workdir
        self.settings = settings

    def session(self, speed: ModelSpeed | None = None, *, redis_url: str | None = None) -> Bench:
        """A fresh session (new fakes, emptied Redis; by default the private one); use it as `async with`."""
        return Bench(redis_url or self.redis_url, self.workdir, speed or self.settings.model)


def resident_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: its resident memory now, and the most it has had."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    # /proc/PID/stat: the command name (field 2) may hold spaces, so count fields after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_of(process: BotProcess) -> int:
    """The operating system's id of a started process."""
    assert process.process is not None, "not started"
    return process.process.pid
