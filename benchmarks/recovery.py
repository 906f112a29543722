"""Part 3: how soon unfinished work resumes after a process dies mid-answer.

Two ways back: the same DYNO restarts and takes its own tasks back at once (what Heroku does on a crash), or
another process takes a dead consumer's tasks over once their lease runs out. The first is bounded below by
starting Python and importing the SDKs, so it is shown beside `python -c "import anthropic"` timed in the same
run, plain and with the garbage collector off during the import as `python -m bot` has it. The second is
bounded below by the lease, TASK_LEASE_SECONDS. Each is measured `repeats` times on fresh fakes and an emptied
Redis; the median is reported with every run's figure.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

from benchmarks.figures import PartResult, Row, secs
from benchmarks.harness import Bench, Lab
from benchmarks.stats import median, ratio

CHANNEL = "C0RESUME"


async def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll `predicate` every 5 ms until it is true (finer than the harness's 10 ms answer watch)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)


async def resume_seconds(bench: Bench, *, same_dyno: bool, lease: float) -> float:
    """Kill a bot mid-answer; seconds from the kill to the resumed task's next model call."""
    bench.claude.reply_text("never", gate=asyncio.Event())  # the first call hangs: the answer is under way
    lease_env = {"TASK_LEASE_SECONDS": f"{lease:g}"}
    first = await bench.start({"DYNO": "bench.1", **lease_env})
    await first.post_event(bench.mention("resume me", CHANNEL))
    calls = len(bench.claude.requests) + 1
    await wait_for(lambda: len(bench.claude.requests) >= calls)
    if not same_dyno:
        # The survivor runs already; the dead consumer's lease has to run out before it may take the work.
        await bench.start({"DYNO": "bench.2", **lease_env})
    await first.kill()
    started = time.monotonic()
    if same_dyno:
        await bench.start({"DYNO": "bench.1", **lease_env}, wait_ready=False)
    await wait_for(lambda: len(bench.claude.requests) > calls)
    return time.monotonic() - started


async def import_seconds(statement: str) -> float:
    """How long a fresh interpreter takes to start and run `statement` (bytecode already compiled)."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", statement)
    await process.wait()
    return time.monotonic() - started


def runs(values: list[float]) -> str:
    """The median and every run, in seconds."""
    return f"{secs(median(values))} (runs {', '.join(f'{v:.2f}' for v in sorted(values))})"


async def run(lab: Lab) -> PartResult:
    """Same DYNO, then a dead consumer, each on fresh sessions; the import floor timed between them."""
    settings = lab.settings
    result = PartResult("recovery", "Recovery: process killed mid-answer -> the task's next model call")
    same: list[float] = []
    dead: list[float] = []
    plain: list[float] = []
    gc_off: list[float] = []
    for _ in range(settings.repeats):
        async with lab.session() as bench:
            same.append(await resume_seconds(bench, same_dyno=True, lease=settings.lease_seconds))
        plain.append(await import_seconds("import anthropic"))
        # `python -m bot` imports with the garbage collector off (bot/__main__.py): the floor it can reach.
        gc_off.append(await import_seconds("import gc; gc.disable(); import anthropic"))
        async with lab.session() as bench:
            dead.append(await resume_seconds(bench, same_dyno=False, lease=settings.lease_seconds))
    lease = settings.lease_seconds
    result.rows.append(
        Row(
            "restart, same DYNO: kill -> resumed model call",
            runs(same),
            f'`python -c "import anthropic"`: {runs(plain)}; the same with the GC off: {runs(gc_off)}',
            ratio(median(same), median(gc_off)),
        )
    )
    result.rows.append(
        Row(
            "dead consumer, taken over by another process",
            runs(dead),
            f"lease (TASK_LEASE_SECONDS) {secs(lease)}",
            ratio(median(dead), lease),
        )
    )
    result.series = {
        "same_dyno": same,
        "dead_consumer": dead,
        "import_anthropic": plain,
        "import_anthropic_gc_off": gc_off,
        "lease": lease,
    }
    result.notes.append(
        "Ratios: same DYNO / starting Python and importing the SDK with the garbage collector off, as the bot "
        "does (no restart can resume sooner); dead consumer / the lease it has to wait out."
    )
    return result
