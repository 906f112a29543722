"""Key names for Redis Cluster: a thread's keys share its shard's slot, and the shards spread over the slots."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from store.journal import TaskJournal
from store.keys import KeySpace
from store.models import TaskKind, TaskStatus, ThreadRef, Turn
from store.stops import StopRequests
from store.tasks import TaskQueue
from tests.unit.store.conftest import ELSEWHERE, SPACE, THREAD, claim_all, make_task

slack_ids = st.from_regex(r"[A-Z0-9]{1,11}", fullmatch=True)
thread_ts = st.just("") | st.builds(
    lambda s, us: f"{s}.{us:06d}", st.integers(1_000_000_000, 9_999_999_999), st.integers(0, 999_999)
)
threads = st.builds(ThreadRef, slack_ids, slack_ids, thread_ts)


def slot(key: str) -> int:
    """The cluster slot of a key, as Redis Cluster computes it (hash tags included)."""
    return int(key_slot(key.encode()))


def thread_keys(space: KeySpace, ref: ThreadRef, task_id: str = "Ev1") -> list[str]:
    """Every key a thread's scripts declare: its own keys, its shard's channel keys and queue."""
    return [
        space.state(ref),
        space.inbox(ref),
        space.queued(ref),
        space.task(ref, task_id),
        space.thread_channel_threads(ref),
        space.thread_channel_usage(ref),
        space.thread_queue(ref),
    ]


@settings(deadline=None)  # the first KeySpace(1024) looks for its 1024 tags
@given(ref=threads, shards=st.sampled_from([1, 2, 3, 16, 100, 1024]), task_id=slack_ids)
def test_every_key_of_a_threads_scripts_hashes_to_its_shards_slot(ref: ThreadRef, shards: int, task_id: str) -> None:
    """State, inbox, flag, task, the channel index and usage of its shard, and its shard's queue: one slot."""
    space = KeySpace(shards)
    shard = space.shard_of(ref)
    assert {slot(key) for key in thread_keys(space, ref, task_id)} == {slot(space.queue(shard))}
    assert slot(space.channel_threads(ref.team_id, ref.channel_id, shard)) == slot(space.queue(shard))
    assert space.thread_of_queued(space.queued(ref)) == ref
    assert space.thread_of_queued(space.queued(ref).replace(":queued", ":inbox")) is None


def test_shard_of_is_stable_across_key_spaces_and_processes() -> None:
    """The shard of a thread is a fixed function of its reference (crc32), never of a process's hash seed: these
    values are what data already in Redis was written under."""
    refs = [ThreadRef("T1", "C1", f"1700000000.00010{n}") for n in range(8)]
    assert [KeySpace(16).shard_of(ref) for ref in refs] == [15, 9, 3, 5, 6, 0, 10, 12]
    assert [KeySpace().shard_of(ref) for ref in refs] == [KeySpace(16).shard_of(ref) for ref in refs]
    assert KeySpace(16).shard_of(ThreadRef("T0FAKE", "D1", "")) == 14
    assert KeySpace(1).shard_of(THREAD) == 0


@pytest.mark.parametrize("shards", [3, 16, 100])
def test_shard_of_spreads_threads_evenly(shards: int) -> None:
    """Many threads of a few channels land in every shard, each within a fifth of its fair share."""
    refs = [
        ThreadRef(f"T{n % 3}", f"C{n % 7}", f"{1700000000 + n * 37}.{n % 999_999:06d}") for n in range(200 * shards)
    ]
    counts = Counter(KeySpace(shards).shard_of(ref) for ref in refs)
    assert sorted(counts) == list(range(shards))
    assert all(160 <= count <= 240 for count in counts.values()), counts


@pytest.mark.parametrize("shards", [1, 16, 1024])
def test_shard_tags_take_distinct_slots_one_per_equal_share_of_the_slot_range(shards: int) -> None:
    """Shard g's tag hashes into the g-th of `shards` equal parts of the 16384 slots, so that a cluster whose nodes
    hold contiguous ranges gets its share of the shards."""
    space = KeySpace(shards)
    slots = [slot(space.queue(shard)) for shard in range(shards)]
    assert len(set(slots)) == shards
    for shard, queue_slot in enumerate(slots):
        assert (
            shard * REDIS_CLUSTER_HASH_SLOTS // shards <= queue_slot < (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
        )
    if shards == 16:
        assert [queue_slot // 1024 for queue_slot in slots] == list(range(16))


def test_a_key_space_refuses_shard_counts_it_cannot_hold() -> None:
    """Between 1 and MAX_SHARDS shards; anything else fails when the process is built."""
    for shards in (0, -1, 1025):
        with pytest.raises(ValueError, match="queue shards"):
            KeySpace(shards)


def record_script_keys(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the keys of every EVALSHA sent on `redis`, alone or in a pipeline; returns the growing list."""
    declared: list[list[str]] = []

    def note(args: tuple[Any, ...]) -> None:
        if str(args[0]).upper() in ("EVALSHA", "EVAL"):
            declared.append([str(key) for key in args[3 : 3 + int(args[2])]])

    direct = redis.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        note(args)
        return await direct(*args, **options)

    buffered = Pipeline.pipeline_execute_command

    def pipeline_execute_command(self: Pipeline, *args: Any, **options: Any) -> Any:
        note(args)
        return buffered(self, *args, **options)

    monkeypatch.setattr(redis, "execute_command", execute_command)
    monkeypatch.setattr(Pipeline, "pipeline_execute_command", pipeline_execute_command)
    return declared


async def test_every_script_the_store_runs_for_a_thread_declares_keys_of_one_slot(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submit, claim, start, stop, journal, finish, reset, release and requeue: every EVALSHA names keys of one slot
    (what Redis Cluster requires), for threads of two shards."""
    declared = record_script_keys(redis, monkeypatch)
    queue, journal = TaskQueue(redis, SPACE), TaskJournal(redis, SPACE)
    for shard in range(SPACE.shards):
        await queue.ensure_group(shard)
    for ref in (THREAD, ELSEWHERE):
        await queue.submit(make_task("Ev1", thread=ref))
        await queue.submit(make_task("Ev2", thread=ref))
    for lease in await claim_all(queue):
        await queue.heartbeat(lease.consumer, lease.shard, [lease.entry_id])
        task = await queue.head(lease.thread)
        assert task is not None
        await journal.start(lease, task)
        await StopRequests(redis, SPACE).request(lease.thread, "U1")
        await journal.set_reply_ts(lease, task, "1700000002.000100")
        await journal.record_step(lease, task, {"kind": "model"})
        await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q")])
        assert await queue.release(lease) is False
        await redis.delete(SPACE.queued(lease.thread))
        await journal.check_lease(lease)  # the script path: the flag is restored
        await queue.reset(make_task("Reset1", TaskKind.RESET, thread=lease.thread))
        await redis.delete(SPACE.queue(lease.shard))  # lost: the next step requeues the thread
        await queue.ensure_group(lease.shard)
        await queue.requeue_orphans(lease.shard)
        await queue.prune_consumers(lease.shard)
    assert len([keys for keys in declared if len(keys) > 1]) >= 2 * 10
    assert {len(keys) for keys in declared} >= {2, 3, 6, 7}  # HOLDS, START..., SUBMIT, FINISH and RESET were seen
    for keys in declared:
        assert len({slot(key) for key in keys}) == 1, keys
