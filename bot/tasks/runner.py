"""The task runner: claims threads with work from the queue and works each thread's inbox in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass

from bot.core import log_context, metrics
from bot.core.errors import SlackError
from bot.tasks.executor import TaskExecutor
from bot.tasks.priority import IntakeFirst
from bot.tasks.stopping import StopListener
from store.connection import REDIS_FAILURES, first_line, lost_mid_write
from store.errors import LeaseLost
from store.leaving import Departures
from store.models import Task
from store.tasks import TaskQueue, ThreadLease, queue_lost, read_unblocked, stream_left_node

log = logging.getLogger(__name__)

# How often a worker looks for threads whose worker died (a cheap XAUTOCLAIM per shard).
STALE_CHECK_SECONDS = 5.0
# How often a worker removes consumers that have been idle, holding nothing, for an hour (one cheap script).
PRUNE_CONSUMERS_SECONDS = 300.0
# How often a worker deletes the data of workspaces whose uninstall grace period is over (one ZRANGEBYSCORE when none
# is due; every worker does it, and a team deleted twice costs one more SCAN that finds nothing).
DEPARTURES_SWEEP_SECONDS = 3600.0


MAX_BACKOFF_SECONDS = 8.0
# At most this long a queue reader waits to read again after Redis ended its read (UNBLOCKED): a moved stream waits
# no longer than that on its new node.
UNBLOCKED_PAUSE_SECONDS = 0.25


def failure_reason(exc: Exception) -> str:
    """Why a task step failed, in words for the thread (SlackError texts name the method and Slack's error code)."""
    if isinstance(exc, SlackError):
        return f"Slack would not take my message: {exc}"
    return "something went wrong on my side; the details are in the bot's log"


def backoff(base: float, failures: int) -> float:
    """Seconds to wait after `failures` failures in a row: doubling from `base`, at most MAX_BACKOFF_SECONDS."""
    return float(min(base * 2 ** max(failures - 1, 0), MAX_BACKOFF_SECONDS))


@dataclass(frozen=True)
class RunnerSettings:
    """How the runner claims and holds work."""

    consumer: str
    max_concurrent: int = 200
    lease_seconds: float = 30.0
    grace_seconds: float = 20.0
    retry_delay: float = 2.0
    block_ms: int = 5000  # how long a shard's reader waits for new work in one read (it is cancelled at a stop)


class TaskRunner:
    """Runs queued tasks until asked to stop; one coroutine per thread with work."""

    def __init__(
        self,
        queue: TaskQueue,
        executor: TaskExecutor,
        settings: RunnerSettings,
        intake_first: IntakeFirst,
        stop_listener: StopListener | None = None,
        departures: Departures | None = None,
    ) -> None:
        self._queue = queue
        self._departures = departures  # workspaces that uninstalled the app (None: not checked)
        self._sweeping: asyncio.Task[None] | None = None
        self._stop_listener = stop_listener  # hears the stops of this worker's answers (None: nothing to stop)
        self._intake_first = intake_first
        self._executor = executor
        self._settings = settings
        self._active: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()
        self._reserved = 0  # slots promised to the reads waiting for new work
        self._reader_shards = queue.reader_shards()
        # A read takes up to its count from each of its shards: each asks for at most its share of the slots, so
        # that together they take at most max_concurrent.
        self._claim_batch = max(1, settings.max_concurrent // queue.shards)
        self._next_shard = 0
        self._readers_waiting = 0  # readers waiting for a free slot
        self._rebuilding = asyncio.Lock()  # one rebuild of a lost queue at a time, however many meet the loss
        self._rebuilds = 0

    @property
    def consumer(self) -> str:
        """This process's name in the consumer groups: DYNO, or a distinct one if another live process has it."""
        return self._settings.consumer

    @property
    def active_threads(self) -> int:
        """How many threads this process is working on now."""
        return len(self._active)

    async def prepare(self) -> None:
        """Make the queue ready (scripts, and every shard's group) before Slack's events may arrive."""
        await self._queue.load_scripts()
        await self._make_queue()

    async def _make_queue(self) -> None:
        """Create the shards' groups if needed; where one had to be, give threads whose entry was lost a new one."""
        for shard in range(self._queue.shards):
            if await self._queue.ensure_group(shard):
                requeued = await self._queue.requeue_orphans(shard)
                if requeued:
                    log.warning("queued %d thread(s) again whose queue entry Redis had lost", requeued)

    async def _heal(self, exc: Exception) -> bool:
        """If `exc` says Redis lost the task queue, make it again and return True; False for any other error, or
        if the queue could not be made (the caller then waits and retries as for any Redis error).

        Redis loses the queue when the stream is deleted, evicted, or gone in a restart without persistence (a
        stream that a Redis Cluster reshard moves is not: commands meet ASK, TRYAGAIN or MOVED, which the cluster
        client follows, not NOGROUP; a read blocked on it, or on a master that fails over, is UNBLOCKED, which
        _read_shards reads again). Every part of the worker can be the first to meet that (reading the queue, a
        running task's write, renewing the leases), and a worker with every slot busy does not read the queue, so
        each of them heals it. The first makes the queue; callers that meet the loss meanwhile wait for it and go
        on, so it is made once, not once per thread. Work submitted since has its inbox and queue entry, which
        intake writes as usual; threads whose flag survived the loss get a new entry, and the runs that held their
        old entry are refused their next write.
        """
        if not queue_lost(exc):
            return False
        seen = self._rebuilds
        async with self._rebuilding:
            if self._rebuilds != seen:  # made again while this caller waited
                return True
            log.warning("the task queue is gone from Redis; creating it again")
            try:
                await self._make_queue()
            except REDIS_FAILURES as again:
                log.warning("cannot create the task queue again (%s)", again)
                return False
            self._rebuilds += 1
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and run work until `stopping` is set, then let running tasks finish within the grace period.

        Call prepare() first: it makes the queue this reads.
        """
        consumer = self._settings.consumer
        if len(self._reader_shards) > self._settings.max_concurrent:
            log.warning(
                "MAX_CONCURRENT_TASKS (%d) is below the number of queue readers (%d, one per shard on a cluster): "
                "they take turns, reading every 100 ms",
                self._settings.max_concurrent,
                len(self._reader_shards),
            )
        await self._resume_own(stopping)
        with contextlib.suppress(*REDIS_FAILURES):  # the lease keeper says it again every few seconds
            await self._queue.mark_alive(consumer)
        keeper = asyncio.create_task(self._keep_leases(stopping), name="lease-keeper")
        readers = [
            asyncio.create_task(self._read_shards(shards, stopping), name=f"queue-reader-{shards[0]}")
            for shards in self._reader_shards
        ]
        if self._stop_listener is not None:  # it ends with the readers: answers still running then are not stopped
            readers.append(asyncio.create_task(self._stop_listener.run(stopping), name="stop-listener"))
        try:
            await stopping.wait()
        finally:
            for reader in readers:
                reader.cancel()  # a blocked read ends now; an entry it was being handed stays pending to this name
            await asyncio.gather(*readers, return_exceptions=True)
            keeper.cancel()
            if self._sweeping is not None:  # an unfinished deletion is done again by the next sweep
                self._sweeping.cancel()
            await self._drain()
            with contextlib.suppress(*REDIS_FAILURES):
                await self._queue.mark_stopped(consumer)

    async def _resume_own(self, stopping: asyncio.Event) -> None:
        """Take back the threads this consumer name held when its previous process stopped, shard by shard; a Redis
        that fails meanwhile (down, out of memory) is waited for, as everywhere else, not a reason to stop."""
        consumer, failures = self._settings.consumer, 0
        shard = 0
        while shard < self._queue.shards and not stopping.is_set():
            try:
                own = await self._queue.claim_own_pending(consumer, shard)
            except REDIS_FAILURES as exc:
                metrics.REDIS_ERRORS.labels(where="runner").inc()
                failures += 1
                log.warning("cannot take back this worker's threads yet (%s); retrying", exc)
                await asyncio.sleep(backoff(self._settings.retry_delay, failures))
                continue
            if own:
                log.info(
                    "resuming %d thread(s) of shard %d this worker (%s) held before it stopped",
                    len(own),
                    shard,
                    consumer,
                )
            self._start(own)
            shard += 1

    async def _read_shards(self, shards: list[int], stopping: asyncio.Event) -> None:
        """Claim the shards' new work while there are free slots, until `stopping` is set."""
        failures = 0
        while not stopping.is_set():
            free = self._settings.max_concurrent - len(self._active) - self._reserved
            if free <= 0:
                self._slot_freed.clear()
                self._readers_waiting += 1
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_freed.wait(), timeout=1.0)
                finally:
                    self._readers_waiting -= 1
                continue
            # XREADGROUP's COUNT is per stream: with fewer free slots than shards, read only that many shards (the
            # next ones in turn, so that none waits behind the others).
            reading = shards
            if free < len(shards):
                start = self._next_shard % len(shards)
                reading = (shards[start:] + shards[:start])[:free]
                self._next_shard = start + free
            wanted = max(1, min(free, self._claim_batch * len(reading)) // len(reading))
            self._reserved += wanted * len(reading)
            # Reading some shards only, or with fewer slots than readers, wait briefly: the other shards, or the
            # readers waiting for a slot, take their turn at the next read.
            brief = reading is not shards or len(self._reader_shards) > self._settings.max_concurrent
            block_ms = min(self._settings.block_ms, 100) if brief else self._settings.block_ms
            try:
                leases = await self._queue.claim_new(self._settings.consumer, reading, wanted, block_ms)
            except REDIS_FAILURES as exc:
                if read_unblocked(exc):  # no loss: see _wait_to_read_again
                    await self._wait_to_read_again(reading, exc)
                    continue
                metrics.REDIS_ERRORS.labels(where="queue_reader").inc()
                if await self._heal(exc):
                    continue
                failures += 1
                log.warning("cannot read the task queue (%s); retrying", exc)
                await asyncio.sleep(backoff(self._settings.retry_delay, failures))
                continue
            # Whatever else goes wrong, the reader goes on: without it, its shards' work would wait for a restart.
            except Exception as exc:  # noqa: BLE001 - logged with its traceback by _log_unexpected
                _log_unexpected(exc, "a queue reader", "it goes on after a pause")
                await asyncio.sleep(self._settings.retry_delay)
                continue
            finally:
                self._reserved -= wanted * len(reading)
            failures = 0
            self._start(leases)
            if not leases and self._readers_waiting:
                # Hand the slot to a reader waiting for one (of other shards, on a cluster with fewer slots than
                # shards) and give it time to take it, so that every shard gets its turn.
                self._slot_freed.set()
                await asyncio.sleep(0.01)

    async def _wait_to_read_again(self, shards: list[int], exc: Exception) -> None:
        """Wait to read the shards again after Redis ended a read blocked on them (UNBLOCKED), which is no loss.

        Either the stream left the node (a reshard moved it, or it was deleted: the next read answers NOGROUP then,
        which heals it), and it is read again on its new node within a moment, each reader its own (readers rushing
        the cluster client together meet its internal race: a connection closed under a command); or the node
        became a replica (a failover), and it is read again, as after any failure, once the cluster has settled.
        """
        log.info("a read of shard(s) %s was ended by Redis (%s); reading again", shards, exc)
        if stream_left_node(exc):
            await asyncio.sleep(random.uniform(0, UNBLOCKED_PAUSE_SECONDS))
        else:
            await asyncio.sleep(self._settings.retry_delay)

    def _start(self, leases: list[ThreadLease]) -> None:
        for lease in leases:
            if lease.key not in self._active:
                name = f"thread-{lease.shard}-{lease.entry_id}"
                # Its own context: the thread's records carry its ids, and each task's its id (bind_task in _work).
                context = log_context.thread_context(lease.thread)
                self._active[lease.key] = asyncio.create_task(self._work(lease), name=name, context=context)

    async def _work(self, lease: ThreadLease) -> None:
        """Work one thread's inbox until it is empty, oldest task first."""
        failures = 0
        task: Task | None = None
        try:
            while True:
                task = None
                log_context.bind_task(None)  # until the next task is read: no record names the one just done
                try:
                    await self._intake_first.turn()
                    task = await self._queue.head(lease.thread)
                    log_context.bind_task(task.task_id if task is not None else None)
                    if task is None:
                        if await self._queue.release(lease):
                            return
                        continue
                    if await self._left(lease):
                        return
                    await self._executor.execute(lease, task)
                    failures = 0
                    if self._executor.released(lease):  # finishing the last task gave the thread back
                        return
                except LeaseLost as exc:
                    # Stalled past the lease, or the thread was reset: every write of ours is refused now.
                    log.warning("thread %s: %s; leaving it", lease.thread.encode(), exc)
                    return
                except REDIS_FAILURES as exc:
                    metrics.REDIS_ERRORS.labels(where="runner").inc()
                    # Redis is down or failing over: wait for it, longer each time, then pick up where we were. If
                    # it lost the queue instead, go on at once once the queue is back: the next write says whether
                    # this run still holds the thread (an entry lost with the stream is not held any more).
                    failures += 1
                    healed = await self._heal(exc)
                    if not healed:
                        log.warning(
                            "thread %s: Redis unavailable (%s); retrying", lease.thread.encode(), first_line(exc)
                        )
                    if not healed or failures > 1:
                        await asyncio.sleep(backoff(self._settings.retry_delay, failures))
                    continue
                # A failing task must not take the worker down with it: log it and try again after a pause.
                # Its attempt counter makes sure it is failed for good after a few tries.
                except Exception as exc:  # noqa: BLE001 - logged with its traceback by _log_unexpected
                    _log_unexpected(exc, f"thread {lease.thread.encode()}: a task step", "retrying")
                    if task is not None:  # what the thread is told if the task is failed for good
                        with contextlib.suppress(*REDIS_FAILURES):
                            await self._queue.note_failure(task, failure_reason(exc))
                    await asyncio.sleep(self._settings.retry_delay)
        finally:
            self._active.pop(lease.key, None)
            self._slot_freed.set()

    async def _left(self, lease: ThreadLease) -> bool:
        """Whether the thread's workspace uninstalled the app; if so its work is cancelled, silently (Slack revoked
        the tokens: nothing could be posted), and the thread given up."""
        if self._departures is None or not await self._departures.has_left(lease.thread.team_id):
            return False
        cancelled = await self._departures.cancel_thread(lease.thread, lease.entry_id)
        log.info("thread %s: its workspace uninstalled the app; cancelled %d task(s)", lease.thread.encode(), cancelled)
        return True

    async def _keep_leases(self, stopping: asyncio.Event) -> None:
        """Renew this worker's leases and take over threads whose worker stopped renewing theirs.

        Leases are renewed every third of the lease; stale threads are looked for every couple of seconds, so a
        dead worker's threads move at most that long after its lease ran out.
        """
        renew_every = self._settings.lease_seconds / 3
        look_every = min(STALE_CHECK_SECONDS, renew_every)
        last_renewal = time.monotonic()
        last_prune = last_renewal - PRUNE_CONSUMERS_SECONDS  # prune soon after start too: that is when names pile up
        last_sweep = last_renewal - DEPARTURES_SWEEP_SECONDS  # and sweep: a worker may live less than an hour
        while True:
            await asyncio.sleep(look_every)
            try:
                if time.monotonic() - last_renewal >= renew_every - look_every / 2:
                    last_renewal = time.monotonic()
                    await self._renew()
                if not stopping.is_set():
                    await self._take_over_stale()
                if time.monotonic() - last_prune >= PRUNE_CONSUMERS_SECONDS:
                    last_prune = time.monotonic()
                    await self._prune_consumers()
                if self._departures is not None and time.monotonic() - last_sweep >= DEPARTURES_SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    self._start_sweep(self._departures)
            except REDIS_FAILURES as exc:
                metrics.REDIS_ERRORS.labels(where="lease_keeper").inc()
                if await self._heal(exc):
                    last_renewal = -math.inf  # renew at the next look: that stops the runs whose entry was lost
                else:
                    log.warning("cannot renew or check leases (%s)", exc)
            # Whatever else goes wrong, the keeper goes on: without it this worker's leases would lapse and its
            # threads pass to others while it still works on them.
            except Exception as exc:  # noqa: BLE001 - logged with its traceback by _log_unexpected
                _log_unexpected(exc, "the lease keeper", "it goes on after a pause")
                await asyncio.sleep(self._settings.retry_delay)

    async def _take_over_stale(self) -> None:
        await self._queue.mark_alive(self._settings.consumer)
        lease_ms = int(self._settings.lease_seconds * 1000)
        taken: list[ThreadLease] = []
        for shard in range(self._queue.shards):
            # Slots held for the blocked reads of new work do not count: a dead worker's threads come first.
            free = self._settings.max_concurrent - len(self._active) - len(taken)
            if free <= 0:  # a full worker leaves them to one with room (or to itself, once a slot frees)
                break
            taken += await self._queue.claim_stale(self._settings.consumer, shard, lease_ms, count=free)
        if taken:
            metrics.LEASE_TAKEOVERS.inc(len(taken))
            log.warning("took over %d thread(s) whose worker stopped renewing its lease", len(taken))
        self._start(taken)

    def _start_sweep(self, departures: Departures) -> None:
        """Delete the data of the workspaces whose uninstall grace is over, beside the keeper: a deletion SCANs the
        keyspace, which must not hold up the renewal of the leases."""
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.create_task(self._sweep_departures(departures), name="departures-sweep")

    async def _sweep_departures(self, departures: Departures) -> None:
        try:
            for team_id in await departures.sweep():
                log.info("deleted the agents of %s: it uninstalled the app over the grace period ago", team_id)
        except REDIS_FAILURES as exc:  # the next sweep, an hour on, tries again
            log.warning("cannot delete the data of uninstalled workspaces yet (%s)", exc)

    async def _prune_consumers(self) -> None:
        removed: set[str] = set()
        for shard in range(self._queue.shards):
            removed.update(await self._queue.prune_consumers(shard))
        if removed:
            log.info("removed %d consumer name(s) idle for an hour with nothing pending", len(removed))

    async def _renew(self) -> None:
        by_shard: dict[int, list[str]] = {}
        for shard, entry_id in list(self._active):
            by_shard.setdefault(shard, []).append(entry_id)
        for shard, entry_ids in by_shard.items():
            for entry_id in await self._queue.heartbeat(self._settings.consumer, shard, entry_ids):
                work = self._active.pop((shard, entry_id), None)
                if work is not None:  # None: the thread was released just now, which is no loss
                    log.warning(
                        "no longer holds queue entry %s (taken over, or its thread was reset); stopping", entry_id
                    )
                    work.cancel()

    async def _drain(self) -> None:
        """Give running tasks the grace period, then cancel the rest: they stay pending for the next start."""
        deadline = time.monotonic() + self._settings.grace_seconds
        while self._active and time.monotonic() < deadline:
            await asyncio.wait(list(self._active.values()), timeout=deadline - time.monotonic())
        if self._active:
            log.warning("stopping with %d thread(s) unfinished; they resume on the next start", len(self._active))
            for work in list(self._active.values()):
                work.cancel()
            await asyncio.gather(*self._active.values(), return_exceptions=True)


def _log_unexpected(exc: Exception, who: str, then: str) -> None:
    """An unexpected error of a part that goes on: a traceback, but one line for a connection closed under a write."""
    if lost_mid_write(exc):
        log.warning("%s lost its Redis connection mid-write; %s", who, then)
    else:
        log.error("%s failed; %s", who, then, exc_info=exc)
