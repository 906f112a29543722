"""A deployment's data written by the store's own classes under 4 queue shards, and what its readers see of it:
for the tests of changing the number of shards (store/reshard.py)."""

from __future__ import annotations

import time
from typing import Any

from store.connection import RedisClient
from store.journal import Fold, TaskJournal
from store.keys import KeySpace
from store.layout import check_layout
from store.models import Task, TaskKind, TaskStatus, ThreadRef, Turn, Usage
from store.tasks import TaskQueue, ThreadLease
from store.threads import ThreadStore

OLD = KeySpace(4)
NEW = KeySpace(7)
# Shards are given as "of 4 -> of 7". Shard 0 has the tag "0-0" in both: its threads keep their keys.
IDLE = ThreadRef("T1", "C1", "1700000000.000100")  # two answers, the first folded into the summary; 3 -> 2
IDLE2 = ThreadRef("T1", "C1", "1700000012.000100")  # one answer; 1 -> 3
KEPT_IDLE = ThreadRef("T1", "C1", "1700000034.000100")  # one answer; 0 -> 0
QUEUED = ThreadRef("T1", "C1", "1700000006.000100")  # two answers waiting; 0 -> 4: its old stream is a new one too
RUNNING = ThreadRef("T1", "C2", "1700000000.000100")  # an answer done, one running (two steps), a note behind; 2 -> 2
TAKEN_OVER = ThreadRef("T1", "C2", "1700000003.000100")  # running, taken over by web.2 (its flag names it); 1 -> 6
KEPT_RUNNING = ThreadRef("T2", "D1", "1700000024.000100")  # running on web.1 (pending to it); 0 -> 0
CLAIMED = ThreadRef("T2", "D1", "")  # a DM's top level, claimed by web.1 and not started; 1 -> 2
THREADS = (IDLE, IDLE2, KEPT_IDLE, QUEUED, RUNNING, TAKEN_OVER, KEPT_RUNNING, CLAIMED)
KEPT = (KEPT_IDLE, KEPT_RUNNING)
CHANNELS = (("T1", "C1"), ("T1", "C2"), ("T2", "D1"))
# Every task's id by thread, finished ones (their event's dedupe records) first, then the inbox in order.
TASKS = {
    IDLE: ["EvI0", "EvI1"],
    IDLE2: ["EvJ0"],
    KEPT_IDLE: ["EvK0"],
    QUEUED: ["EvQ0", "EvQ1"],
    RUNNING: ["EvR0", "EvR1", "EvR2"],
    TAKEN_OVER: ["EvT0"],
    KEPT_RUNNING: ["EvP0"],
    CLAIMED: ["EvC0"],
}
WITH_WORK = {QUEUED: ["EvQ0", "EvQ1"], RUNNING: ["EvR1", "EvR2"], TAKEN_OVER: ["EvT0"], KEPT_RUNNING: ["EvP0"]}
WITH_WORK[CLAIMED] = ["EvC0"]
STEPS = {
    RUNNING: [{"kind": "model", "n": 0}, {"kind": "tool", "name": "search"}],
    TAKEN_OVER: [{"kind": "model", "n": 0}],
    KEPT_RUNNING: [{"kind": "model", "n": 0}],
}


def task(task_id: str, ref: ThreadRef, kind: TaskKind = TaskKind.ANSWER) -> Task:
    """A task as intake records it."""
    return Task(task_id, kind, ref, f"text of {task_id}", "U1", "1700000001.000100", time.time())


async def claim(queue: TaskQueue, ref: ThreadRef, consumer: str = "web.1") -> ThreadLease:
    """Take the thread's new entry as `consumer`, as a worker reading its shard does."""
    leases = await queue.claim_new(consumer, [queue.space.shard_of(ref)], count=10, block_ms=None)
    [lease] = [lease for lease in leases if lease.thread == ref]
    return lease


async def start(queue: TaskQueue, journal: TaskJournal, lease: ThreadLease) -> Task:
    """Start the head task of the lease's thread and journal its steps, as the executor does."""
    head = await queue.head(lease.thread)
    assert head is not None
    attempt = await journal.start(lease, head)
    await journal.steps(head, attempt=attempt)
    for step in STEPS.get(lease.thread, [{"kind": "model", "n": 0}]):
        await journal.record_step(lease, head, step)
    return head


async def answer(queue: TaskQueue, journal: TaskJournal, ref: ThreadRef, task_id: str, fold: Fold | None) -> None:
    """Submit, run and finish one answer with its turns and usage."""
    await queue.submit(task(task_id, ref))
    lease = await claim(queue, ref)
    head = await start(queue, journal, lease)
    turns = [Turn("user", f"question {task_id}", user_id="U1", user_name="Ana"), Turn("assistant", f"answer {task_id}")]
    usage = Usage(input_tokens=100, output_tokens=20, model_calls=1, cache_read_tokens=7, cost_microusd=1500)
    await journal.finish(lease, head, TaskStatus.DONE, turns=turns, usage=usage, fold=fold)


async def build(redis: RedisClient) -> None:
    """Write the dataset through the queue and journal of the OLD key space, after a bot's start."""
    queue, journal = TaskQueue(redis, OLD), TaskJournal(redis, OLD)
    await check_layout(redis, OLD, record_version=True)
    for shard in range(OLD.shards):
        await queue.ensure_group(shard)
    await answer(queue, journal, IDLE, "EvI0", None)
    await answer(queue, journal, IDLE, "EvI1", Fold(1, "Ana asked about the Q3 budget."))
    await answer(queue, journal, IDLE2, "EvJ0", None)
    await answer(queue, journal, KEPT_IDLE, "EvK0", None)
    await answer(queue, journal, RUNNING, "EvR0", None)
    await queue.submit(task("EvR1", RUNNING))
    await start(queue, journal, await claim(queue, RUNNING))
    await queue.submit(task("EvR2", RUNNING, TaskKind.NOTE))
    await queue.submit(task("EvT0", TAKEN_OVER))
    await claim(queue, TAKEN_OVER)
    shard = OLD.shard_of(TAKEN_OVER)
    [taken] = [lease for lease in await queue.claim_stale("web.2", shard, min_idle_ms=0) if lease.thread == TAKEN_OVER]
    await start(queue, journal, taken)
    await queue.submit(task("EvP0", KEPT_RUNNING))
    await start(queue, journal, await claim(queue, KEPT_RUNNING))
    await queue.submit(task("EvC0", CLAIMED))
    await claim(queue, CLAIMED)
    await queue.submit(task("EvQ0", QUEUED))
    await queue.submit(task("EvQ1", QUEUED))


async def view(redis: RedisClient, space: KeySpace) -> dict[str, Any]:
    """Everything the store's readers see of the dataset in `space`: agents, turns, current tasks, inboxes, task
    records, channel indexes, usage and counts (entries and leases aside)."""
    threads = ThreadStore(redis, space)
    seen: dict[str, Any] = {}
    for ref in THREADS:
        seen[ref.encode()] = {
            "agent": await threads.agent(ref),
            "state": await threads.state(ref),
            "current": await threads.current_task(ref),
            "inbox": await redis.lrange(space.inbox(ref), 0, -1),
            "flagged": await redis.exists(space.queued(ref)),
            "tasks": {task_id: await redis.hgetall(space.task(ref, task_id)) for task_id in TASKS[ref]},
        }
    for team, channel in CHANNELS:
        seen[f"{team}:{channel}"] = {
            "threads": await threads.channel_threads(team, channel),
            "usage": await threads.channel_usage(team, channel),
            "counts": await threads.channel_counts(team, channel),
        }
    return seen
