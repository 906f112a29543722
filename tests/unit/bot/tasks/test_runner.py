"""The runner against a real Redis: its lease keeper outlives its own failures, and it heals a lost queue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.tasks.priority import IntakeFirst
from bot.tasks.runner import RunnerSettings, TaskRunner
from store.errors import LeaseLost
from store.journal import TaskJournal
from store.keys import KeySpace
from store.models import Task, TaskKind, TaskStatus, ThreadRef
from store.tasks import TaskQueue, ThreadLease, queue_lost
from tests.fakes import wait_until
from tests.unit.store.conftest import claim_all, make_groups, queue_empty


class FirstLookFails(TaskQueue):
    """A queue whose first look for stale threads raises an unexpected error (a bug, not a Redis error)."""

    looks = 0

    async def claim_stale(self, consumer: str, shard: int, min_idle_ms: int, count: int = 100) -> list[ThreadLease]:
        """Raise the first time, then behave."""
        self.looks += 1
        if self.looks == 1:
            raise RuntimeError("an unexpected bug")
        return await super().claim_stale(consumer, shard, min_idle_ms, count)


async def test_the_lease_keeper_survives_an_unexpected_error(redis: Redis, caplog: pytest.LogCaptureFixture) -> None:
    """After an error it logs with its traceback, the keeper still takes over a dead worker's thread."""
    queue = FirstLookFails(redis)
    await make_groups(queue)
    thread = ThreadRef("T1", "C1", "1700000000.000100")
    await queue.submit(Task("Ev1", TaskKind.ANSWER, thread, "hi", "U1", "1700000000.000100", time.time()))
    assert await claim_all(queue, "dead.1")  # then that worker died
    executed: list[str] = []
    stopping = asyncio.Event()

    class Executor:
        async def execute(self, lease: ThreadLease, task: Task) -> None:
            executed.append(task.task_id)
            stopping.set()
            await asyncio.sleep(10)  # left unfinished: the runner stops with no grace

    settings = RunnerSettings(consumer="web.1", block_ms=20, grace_seconds=0, lease_seconds=0.3, retry_delay=0.05)
    runner = TaskRunner(queue, Executor(), settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    with caplog.at_level(logging.ERROR, logger="bot.tasks.runner"):
        await asyncio.wait_for(runner.run(stopping), 10.0)
    assert executed == ["Ev1"] and queue.looks >= 2
    [failure] = [record for record in caplog.records if "lease keeper failed" in record.getMessage()]
    assert failure.exc_info is not None


# Few shards: a runner with fewer free slots than shards reads them in turns of block_ms, which 16 would make slow.
SPACE = KeySpace(4)
A = ThreadRef("T1", "C1", "1700000000.000100")
B = ThreadRef("T1", "C1", "1700000099.000100")


def ask(task_id: str, thread: ThreadRef = A) -> Task:
    """A mention as intake records it."""
    return Task(task_id, TaskKind.ANSWER, thread, "hi", "U1", "1700000001.000100", time.time())


class JournalingExecutor:
    """Runs each task as the real executor does (a fenced start, then a fenced finish), holding `held` tasks at
    `gate` on their first attempt (or, with hold_before_start, on their first run, before it starts); records which
    runs came to the gate, which attempts finished, and which writes the fence refused."""

    def __init__(
        self, journal: TaskJournal, held: set[str], gate: asyncio.Event, *, hold_before_start: bool = False
    ) -> None:
        self.journal, self.held, self.gate = journal, held, gate
        self.hold_before_start = hold_before_start
        self.waiting: list[str] = []
        self.started: list[str] = []
        self.finished: list[tuple[str, int]] = []
        self.refused: list[str] = []
        self.met_lost_queue: list[str] = []

    async def execute(self, lease: ThreadLease, task: Task) -> None:
        """Start, wait at the gate if held, finish; a LeaseLost is noted and passed on to the runner."""
        try:
            if self.hold_before_start and task.task_id in self.held and task.task_id not in self.waiting:
                self.waiting.append(task.task_id)
                await self.gate.wait()
            attempt = await self.journal.start(lease, task)
            self.started.append(task.task_id)
            if task.task_id in self.held and attempt == 1:
                await self.gate.wait()
            if await self.journal.finish(lease, task, TaskStatus.DONE):
                self.finished.append((task.task_id, attempt))
        except LeaseLost:
            self.refused.append(task.task_id)
            raise
        except RedisError as exc:
            if queue_lost(exc):
                self.met_lost_queue.append(task.task_id)
            raise

    def released(self, lease: ThreadLease) -> bool:
        """Whether the task just executed gave the lease's thread back, as the real executor says."""
        return self.journal.released(lease)


class CountedRebuilds(TaskQueue):
    """A queue that counts how often the queue is made (every shard's group, shard 0 first), and how many of those
    makings run at once at most."""

    calls = 0
    running = 0
    most_at_once = 0

    async def ensure_group(self, shard: int) -> bool:
        """Count the making, and how many overlap: the pause lets other callers in, if nothing keeps them out."""
        if shard != 0:
            return await super().ensure_group(shard)
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(0.05)
            return await super().ensure_group(shard)
        finally:
            self.running -= 1


def runner_for(queue: TaskQueue, executor: JournalingExecutor, max_concurrent: int, lease: float = 30.0) -> TaskRunner:
    """A runner that claims quickly and retries quickly."""
    settings = RunnerSettings(
        consumer="web.1",
        max_concurrent=max_concurrent,
        block_ms=20,
        lease_seconds=lease,
        retry_delay=0.05,
        grace_seconds=0,
    )
    return TaskRunner(queue, executor, settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor


async def run_until(runner: TaskRunner, done: Callable[[], object]) -> None:
    """Run the runner until `done()` is true (at most 10 s), then stop it."""
    stopping = asyncio.Event()
    running = asyncio.create_task(runner.run(stopping))
    try:
        await wait_until(done, timeout=10)
    finally:
        stopping.set()
        await asyncio.wait_for(running, 10)


async def test_a_worker_with_every_slot_busy_makes_a_lost_queue_again(redis: Redis) -> None:
    """The streams deleted while the worker's only slot runs a task: the run, still named by its thread's flag,
    finishes its task once and gives the thread back; then the worker makes the queue again and works a new
    thread too."""
    queue, gate = TaskQueue(redis, SPACE), asyncio.Event()
    executor = JournalingExecutor(TaskJournal(redis, SPACE), {"EvA"}, gate)
    runner = runner_for(queue, executor, max_concurrent=1)
    await runner.prepare()

    async def lose_the_queue_midway() -> bool:
        await wait_until(lambda: executor.started == ["EvA"])
        await redis.delete(*SPACE.queues())
        gate.set()
        await queue.submit(ask("EvB", B))
        return True

    await queue.submit(ask("EvA"))
    losing = asyncio.create_task(lose_the_queue_midway())
    await run_until(runner, lambda: len(executor.finished) == 2)
    assert await losing
    assert sorted(executor.finished) == [("EvA", 1), ("EvB", 1)] and executor.refused == []
    for queue_key in SPACE.queues():
        assert await redis.xinfo_groups(queue_key)
    assert await queue_empty(redis, SPACE)


async def test_threads_that_meet_a_lost_queue_at_once_make_it_again_one_at_a_time(redis: Redis) -> None:
    """Five threads taken over from a dead worker while the streams are lost under them: the worker makes the
    queue again one caller at a time, not once per caller that meets the loss, and every task finishes once
    (under the entry it was taken with, or, if the queue was made again first, under the entry requeued for it)."""
    queue, gate = CountedRebuilds(redis, SPACE), asyncio.Event()
    names = [f"Ev{n}" for n in range(5)]
    executor = JournalingExecutor(TaskJournal(redis, SPACE), set(names), gate, hold_before_start=True)
    runner = runner_for(queue, executor, max_concurrent=5, lease=0.3)
    await runner.prepare()
    made_before = queue.calls
    for n, name in enumerate(names):
        await queue.submit(ask(name, ThreadRef("T1", "C1", f"1700000000.00010{n}")))
    assert len(await claim_all(queue, "dead.1")) == 5  # then that worker died

    async def lose_the_queue_midway() -> bool:
        await wait_until(lambda: len(executor.waiting) == 5)  # all five taken over, none started yet
        await redis.delete(*SPACE.queues())
        gate.set()
        return True

    losing = asyncio.create_task(lose_the_queue_midway())
    # The taken-over runs hold their threads by their flags, so they may finish before anyone meets NOGROUP: the
    # next read or look for stale threads does (a read blocked when the streams went is only UNBLOCKED).
    await run_until(runner, lambda: len(executor.finished) == 5 and queue.calls > made_before)
    assert await losing
    assert sorted(name for name, _attempt in executor.finished) == names
    assert queue.most_at_once == 1 and 1 <= queue.calls - made_before < 5
    assert await queue_empty(redis, SPACE)


async def test_the_lease_keeper_makes_a_lost_queue_again_under_a_silent_task(redis: Redis) -> None:
    """A task that writes nothing while the stream is lost: the lease keeper meets the loss, makes the queue again
    and stops the stale run, so the task runs again under its new entry and finishes."""
    queue, never = TaskQueue(redis, SPACE), asyncio.Event()
    executor = JournalingExecutor(TaskJournal(redis, SPACE), {"EvA"}, never)
    runner = runner_for(queue, executor, max_concurrent=1, lease=0.6)
    await runner.prepare()

    async def lose_the_queue_midway() -> bool:
        await wait_until(lambda: executor.started == ["EvA"])
        await redis.delete(SPACE.thread_queue(A))
        return True

    await queue.submit(ask("EvA"))
    losing = asyncio.create_task(lose_the_queue_midway())
    await run_until(runner, lambda: executor.finished)
    assert await losing
    assert executor.finished == [("EvA", 2)] and not never.is_set()


async def test_max_concurrent_holds_when_work_waits_in_every_shard(redis: Redis) -> None:
    """With one slot and a thread waiting in each of several shards, no two threads are ever worked at once
    (a read takes its count from each shard it names, so a nearly full worker names no more shards than slots)."""
    space = KeySpace(16)
    queue = TaskQueue(redis, space)
    await make_groups(queue)
    threads: list[ThreadRef] = []
    for n in range(200):
        ref = ThreadRef("T1", "C1", f"17000000{n:02d}.000100")
        if space.shard_of(ref) not in {space.shard_of(other) for other in threads}:
            threads.append(ref)
        if len(threads) == 6:
            break
    running, most = 0, 0
    stopping = asyncio.Event()
    done: list[str] = []

    class Executor:
        async def execute(self, lease: ThreadLease, task: Task) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.05)
            running -= 1
            done.append(task.task_id)
            await TaskJournal(redis, space).finish(lease, task, TaskStatus.DONE)
            if len(done) == len(threads):
                stopping.set()

        def released(self, lease: ThreadLease) -> bool:
            return True

    settings = RunnerSettings(consumer="web.1", max_concurrent=1, block_ms=20, grace_seconds=0, retry_delay=0.05)
    runner = TaskRunner(queue, Executor(), settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    for number, ref in enumerate(threads):
        await queue.submit(ask(f"Ev{number}", ref))
    await asyncio.wait_for(runner.run(stopping), 20.0)
    assert sorted(done) == sorted(f"Ev{number}" for number in range(len(threads)))
    assert most == 1


class ShardPerReader(TaskQueue):
    """A queue read as on a cluster: one blocking read per shard (here on a standalone Redis)."""

    def reader_shards(self) -> list[list[int]]:
        """One reader per shard."""
        return [[shard] for shard in range(self.shards)]


async def test_with_fewer_slots_than_shard_readers_every_shard_gets_its_turn(redis: Redis) -> None:
    """Sixteen readers (one per shard, as on a cluster) and two slots on an idle worker: a reader whose read comes
    back empty hands its slot to a waiting one, so work in any shard is taken within moments."""
    space = KeySpace(16)
    queue = ShardPerReader(redis, space)
    await make_groups(queue)
    by_shard: dict[int, ThreadRef] = {}
    for n in range(400):
        ref = ThreadRef("T1", "C1", f"1700000{n:03d}.000100")
        by_shard.setdefault(space.shard_of(ref), ref)
    stopping = asyncio.Event()
    done: list[str] = []

    class Executor:
        async def execute(self, lease: ThreadLease, task: Task) -> None:
            done.append(task.task_id)
            await TaskJournal(redis, space).finish(lease, task, TaskStatus.DONE)

        def released(self, lease: ThreadLease) -> bool:
            return True

    settings = RunnerSettings(consumer="web.1", max_concurrent=2, block_ms=5000, grace_seconds=0, retry_delay=0.05)
    runner = TaskRunner(queue, Executor(), settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    running = asyncio.create_task(runner.run(stopping))
    await asyncio.sleep(0.5)  # every reader waiting: two on their (empty) shards, fourteen for a slot
    late = {shard: ref for shard, ref in by_shard.items() if shard >= 10}  # shards whose readers wait for a slot
    for shard, ref in sorted(late.items()):
        await queue.submit(ask(f"Ev{shard}", ref))
    try:
        await wait_until(lambda: len(done) == len(late), timeout=4)
    finally:
        stopping.set()
        await asyncio.wait_for(running, 10)
    assert sorted(done) == sorted(f"Ev{shard}" for shard in late)


class OwnClaimFailsOnce(TaskQueue):
    """A queue whose first look for this worker's own threads meets a Redis that refuses (out of memory)."""

    failed = False

    async def claim_own_pending(self, consumer: str, shard: int) -> list[ThreadLease]:
        """Refuse the first call, then behave."""
        if not self.failed:
            self.failed = True
            raise RedisError("OOM command not allowed when used memory > 'maxmemory'.")
        return await super().claim_own_pending(consumer, shard)


async def test_a_redis_failing_while_the_worker_starts_is_waited_for(redis: Redis) -> None:
    """A Redis error while the runner takes back its own threads at start does not stop it: it retries, and then
    works the queue as usual."""
    queue = OwnClaimFailsOnce(redis, SPACE)
    stopping = asyncio.Event()
    executed: list[str] = []

    class Executor:
        async def execute(self, lease: ThreadLease, task: Task) -> None:
            executed.append(task.task_id)
            await TaskJournal(redis, SPACE).finish(lease, task, TaskStatus.DONE)
            stopping.set()

        def released(self, lease: ThreadLease) -> bool:
            return True

    settings = RunnerSettings(consumer="web.1", block_ms=20, grace_seconds=0, retry_delay=0.05)
    runner = TaskRunner(queue, Executor(), settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    await queue.submit(ask("EvStart"))
    await asyncio.wait_for(runner.run(stopping), 10.0)
    assert queue.failed and executed == ["EvStart"]
