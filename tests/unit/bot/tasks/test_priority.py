"""Acknowledging Slack comes first: task work waits while events are being taken in."""

from __future__ import annotations

import asyncio
import itertools
import time

from redis.asyncio import Redis

from bot.tasks.priority import IntakeFirst
from bot.tasks.runner import RunnerSettings, TaskRunner
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue, ThreadLease


async def test_a_turn_is_immediate_when_nothing_comes_in() -> None:
    gate = IntakeFirst(max_wait=5.0)
    started = time.monotonic()
    await gate.turn()
    assert time.monotonic() - started < 0.5


async def test_a_turn_waits_until_intake_has_settled() -> None:
    gate = IntakeFirst(max_wait=5.0, settle=0.05)
    order: list[str] = []

    async def task_step() -> None:
        await gate.turn()
        order.append("task")

    with gate.taking_in():
        waiting = asyncio.create_task(task_step())
        await asyncio.sleep(0.1)
        assert order == []  # held back while an event is in flight
        order.append("ack")
    await asyncio.sleep(0.01)
    assert order == ["ack"]  # and for the settle time after it
    await asyncio.wait_for(waiting, 1.0)
    assert order == ["ack", "task"]


async def test_steady_intake_cannot_starve_the_tasks() -> None:
    gate = IntakeFirst(max_wait=0.1)
    with gate.taking_in():
        started = time.monotonic()
        await gate.turn()
        waited = time.monotonic() - started
    assert 0.09 <= waited < 1.0


async def test_the_runner_starts_no_task_while_an_event_is_being_taken_in(redis: Redis) -> None:
    queue = TaskQueue(redis)
    gate = IntakeFirst(max_wait=5.0, settle=0.01)
    executed: list[str] = []
    stopping = asyncio.Event()

    class Executor:
        async def execute(self, lease: ThreadLease, task: Task) -> None:
            executed.append(task.task_id)
            stopping.set()
            # Leave the task unfinished: the runner keeps retrying it, which is fine until it stops.
            await asyncio.sleep(10)

    settings = RunnerSettings(consumer="web.1", block_ms=20, grace_seconds=0)
    runner = TaskRunner(queue, Executor(), settings, gate)  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    with gate.taking_in():
        running = asyncio.create_task(runner.run(stopping))
        thread = ThreadRef("T1", "C1", "1700000000.000100")
        await queue.submit(Task("Ev1", TaskKind.ANSWER, thread, "hi", "U1", "1700000000.000100", time.time()))
        await asyncio.sleep(0.3)
        assert executed == [] and runner.active_threads == 1  # claimed, but waiting for intake
    await asyncio.wait_for(running, 5.0)
    assert executed == ["Ev1"]


async def test_under_steady_intake_waiting_tasks_start_one_at_a_time() -> None:
    """Released together, they would take the CPU together and the next acknowledgements would wait for all."""
    gate = IntakeFirst(max_wait=0.05, pace=0.05)
    released: list[float] = []

    async def task_start() -> None:
        await gate.turn()
        released.append(time.monotonic())

    with gate.taking_in():
        began = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(task_start() for _ in range(4))), 2.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(released)]
    assert released[0] - began >= 0.09  # max_wait, then its turn
    assert len(gaps) == 3 and all(gap >= 0.04 for gap in gaps), gaps


async def test_once_intake_settles_the_waiting_tasks_all_go() -> None:
    gate = IntakeFirst(max_wait=0.02, pace=5.0, settle=0.01)
    with gate.taking_in():
        waiting = [asyncio.create_task(gate.turn()) for _ in range(5)]
        await asyncio.sleep(0.1)  # past max_wait: queued for their paced turns, five seconds apart
        assert not any(task.done() for task in waiting)
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*waiting), 2.0)
    assert time.monotonic() - started < 0.5
