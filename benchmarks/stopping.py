"""Part: how soon Stop closes the model's stream, across processes.

Slack's agent_session_stopped event reaches a web process that runs no tasks (RUN_WORKERS_IN_WEB=false); the answer
streams in a worker process. The web process marks the task and tells the worker (store/stops.py), whose stop
listener cancels the answer: its HTTP stream to the model closes. Timed from the event's POST to the moment the fake
model finds its stream closed, `repeats` times on one pair of processes. The fake writes a piece every
CHUNK_SECONDS, and sees the closed stream at its next write: that is the resolution, shown as the reference.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.figures import PartResult, Row, ms
from benchmarks.harness import Bench, Lab
from benchmarks.recovery import wait_for
from benchmarks.stats import median, ratio
from playground.anthropic_api import Reply
from tests.integration.harness import BotProcess
from tests.integration.stop_fakes import WatchedAnthropic, stop_pressed

CHANNEL = "C0STOP"
CHUNK_SECONDS = 0.01
TARGET_SECONDS = 1.0
# Long enough never to end by itself while measured: 2,000 pieces of 8 characters, 20 s.
ANSWER = "word " * 3_200


async def stop_once(bench: Bench, claude: WatchedAnthropic, web_a: BotProcess) -> float:
    """Mention a new thread, stop its answer half a second into the stream; seconds until the stream closed."""
    claude.enqueue(Reply([{"type": "text", "text": ANSWER}], chunk_delay=CHUNK_SECONDS))
    envelope = bench.mention("a long story, please", CHANNEL)
    thread_ts = str(envelope["event"]["ts"])
    requests, ended = len(claude.requests), len(claude.stream_ends)
    await web_a.post_event(envelope)
    await wait_for(lambda: len(claude.requests) > requests)
    await asyncio.sleep(0.5)  # well into the stream
    asked = time.monotonic()
    await web_a.post_event(stop_pressed(bench.slack, CHANNEL, thread_ts, "U0STOPPER"))
    await wait_for(lambda: len(claude.stream_ends) > ended, timeout=20)
    closed_at, closed = claude.stream_ends[-1]
    if not closed:
        raise RuntimeError("the model stream was read to its end: the stop did not close it")
    return closed_at - asked


async def run(lab: Lab) -> PartResult:
    """Web process A and worker process B on fresh fakes; each repeat stops one streamed answer."""
    result = PartResult("stop", "Stop: Slack's agent_session_stopped at web process A -> model stream closed in B")
    bench = lab.session()
    claude = WatchedAnthropic()
    bench.claude = claude  # (before the session starts: it is the model the bots are pointed at)
    delays: list[float] = []
    async with bench:
        web_a = await bench.start({"RUN_WORKERS_IN_WEB": "false", "DYNO": "bench.web"})
        await bench.start({"DYNO": "bench.worker"}, args=("worker",), wait_ready=False)
        for _ in range(lab.settings.repeats + 1):  # the first warms the processes up: not counted
            delays.append(await stop_once(bench, claude, web_a))
            await bench.quiet()
    measured = delays[1:]
    p50 = median(measured)
    result.rows.append(
        Row(
            "Stop -> model stream closed, across processes (median)",
            f"{ms(p50)} (runs {', '.join(ms(value) for value in sorted(measured))})",
            f"the fake model's write interval {ms(CHUNK_SECONDS)}",
            ratio(p50, CHUNK_SECONDS),
            f"< {TARGET_SECONDS:g} s",
            max(measured) < TARGET_SECONDS,
        )
    )
    result.series = {"stop_to_closed": measured, "chunk_seconds": CHUNK_SECONDS}
    result.notes.append(
        "The web process takes the event (one Redis script and one push to the worker's stop list); the worker's "
        "listener, blocked on that list, cancels the answer; the target is met when every run is under 1 s."
    )
    return result
