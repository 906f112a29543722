"""ThreadStore against a real Redis: an agent's status as read, and a channel's agents across shards."""

from __future__ import annotations

from redis.asyncio import Redis

from store.journal import TaskJournal
from store.models import TaskKind, TaskStatus, ThreadRef, Turn
from store.tasks import TaskQueue
from store.threads import ChannelCounts, ThreadStore
from tests.unit.store.conftest import ELSEWHERE, OTHER, SPACE, THREAD, lease_on, make_task


async def test_an_agents_status_is_read_from_the_head_of_its_inbox(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Queued while its head task waits, working while it runs, idle once the inbox is empty; a new thread reads
    as a new agent before its first task finishes."""
    store = ThreadStore(redis, SPACE)
    assert await store.state(THREAD) is None
    await queue.submit(make_task("Ev1"))
    state = await store.state(THREAD)
    assert state is not None and state.status == "queued" and state.tasks_done == 0
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(lease, task)
    state = await store.state(THREAD)
    assert state is not None and state.status == "working"
    current = await store.current_task(THREAD)
    assert current is not None and current.task.task_id == "Ev1" and current.task.attempts == 1
    await journal.record_step(lease, task, {"kind": "tool", "name": "read_thread"})
    current = await store.current_task(THREAD)
    assert current is not None and (current.steps, current.last_step) == (1, "tool:read_thread")
    await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q"), Turn("assistant", "a")])
    state = await store.state(THREAD)
    assert state is not None and (state.status, state.turns, state.tasks_done) == ("idle", 2, 1)
    assert await store.current_task(THREAD) is None
    await queue.submit(make_task("Ev2"))
    state = await store.state(THREAD)
    assert state is not None and (state.status, state.turns) == ("queued", 2)  # the agent's counters, queued


async def test_a_channels_index_drops_threads_with_neither_agent_nor_work(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """An index entry whose thread's state expired (and has no inbox) is not listed, and is removed from its
    shard's index; threads with an agent or with queued work stay listed, whichever shard they are in."""
    for task_id, ref in (("Ev1", THREAD), ("Ev2", ELSEWHERE)):
        await queue.submit(make_task(task_id, thread=ref))
        lease = await lease_on(queue, ref)
        task = await queue.head(ref)
        assert task is not None
        await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q")])
    await queue.submit(make_task("Ev3", thread=OTHER))  # mentioned, not answered yet
    store = ThreadStore(redis, SPACE)
    assert await store.channel_threads("T1", "C1") == [OTHER.thread_ts, ELSEWHERE.thread_ts, THREAD.thread_ts]
    await redis.delete(SPACE.state(ELSEWHERE))  # expired (AGENT_TTL)
    assert await store.channel_threads("T1", "C1") == [OTHER.thread_ts, THREAD.thread_ts]
    assert await redis.zscore(SPACE.thread_channel_threads(ELSEWHERE), ELSEWHERE.thread_ts) is None
    assert await store.channel_counts("T1", "C1") == ChannelCounts(agents=2, working=0, queued=1, failing=0)


async def test_channel_counts_add_up_every_shard(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Working, queued and failing agents are counted in every shard of the channel; a status request in a thread
    without an agent is none."""
    for task_id, ref in (("Ev1", THREAD), ("Ev2", ELSEWHERE)):
        await queue.submit(make_task(task_id, thread=ref))
        lease = await lease_on(queue, ref)
        task = await queue.head(ref)
        assert task is not None
        status = TaskStatus.FAILED if ref == ELSEWHERE else TaskStatus.DONE
        await journal.finish(lease, task, status, turns=[Turn("user", "q")], error="it broke")
    await queue.submit(make_task("Ev3", thread=ELSEWHERE))
    lease = await lease_on(queue, ELSEWHERE)
    task = await queue.head(ELSEWHERE)
    assert task is not None
    await journal.start(lease, task)
    await queue.submit(make_task("Ev4", thread=OTHER))
    # A status request in a thread without an agent lists nothing (only answers make agents).
    await queue.submit(make_task("Ev5", TaskKind.STATUS, thread=ThreadRef("T1", "C1", "1700000000.000103")))
    counts = await ThreadStore(redis, SPACE).channel_counts("T1", "C1")
    assert counts == ChannelCounts(agents=3, working=1, queued=1, failing=1)
