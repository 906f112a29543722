"""TaskJournal against a real Redis: attempts, steps, finishing, and what finishing writes."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from store import keys
from store.errors import CorruptRecord, LeaseLost
from store.journal import Fold, TaskJournal
from store.models import Task, TaskKind, TaskStatus, ThreadRef, Turn, Usage
from store.tasks import TaskQueue, ThreadLease
from store.threads import ChannelCounts, ThreadStore
from tests.unit.store.conftest import ELSEWHERE, OTHER, SPACE, THREAD, lease_on, make_task


async def submit_and_lease(queue: TaskQueue, *tasks: Task) -> tuple[ThreadLease, Task]:
    """Submit `tasks` (all of one thread), claim the thread, and return the lease with the task at its head."""
    for task in tasks:
        await queue.submit(task)
    thread = tasks[0].thread
    lease = await lease_on(queue, thread)
    head = await queue.head(thread)
    assert head is not None
    return lease, head


async def step_fields(redis: Redis, ref: ThreadRef, task_id: str) -> list[str]:
    """The journal fields (step:N) left in a task's hash."""
    return [name for name in await redis.hkeys(SPACE.task(ref, task_id)) if name.startswith(keys.STEP_FIELD)]


async def test_finish_writes_turns_and_usage_once(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finishing a task twice (a resumed task) writes its turns and counts its usage only once."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"), make_task("Ev2"))
    turns = [Turn("user", "q", user_id="U1"), Turn("assistant", "a")]
    assert await journal.finish(lease, task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1)) is True
    assert await journal.finish(lease, task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1)) is False
    store = ThreadStore(redis, SPACE)
    assert await store.turns(THREAD) == turns
    state, window = await store.agent(THREAD)
    assert state is not None and window == turns
    assert (state.turns, state.tasks_done, state.usage) == (2, 1, Usage(10, 5, 1))
    assert await store.channel_usage("T1", "C1") == Usage(10, 5, 1)
    assert await redis.lrange(SPACE.inbox(THREAD), 0, -1) == ["Ev2"]


async def test_a_lease_given_back_by_finish_can_write_nothing_more(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Once finishing the last task gave the thread back, a second finish of that task is refused and writes
    nothing."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"))
    turns = [Turn("user", "q")]
    assert await journal.finish(lease, task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1)) is True
    assert journal.released(lease)
    with pytest.raises(LeaseLost):
        await journal.finish(lease, task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1))
    state = await ThreadStore(redis, SPACE).state(THREAD)
    assert state is not None and (state.turns, state.usage, state.status) == (1, Usage(10, 5, 1), "idle")


async def test_steps_are_journaled_in_order_and_counted_attempts(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Each recorded step is read back in order (from the second attempt on), and every start counts one more
    attempt, as read from the task's record."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"))
    assert await journal.start(lease, task) == 1
    assert await journal.steps(task, attempt=1) == []  # a first attempt has no journal
    await journal.record_step(lease, task, {"kind": "model", "n": 1})
    await journal.record_step(lease, task, {"kind": "tool", "n": 2})
    again = await queue.head(THREAD)  # the task as a resumed run reads it
    assert again is not None and again.attempts == 1 and again.status is TaskStatus.RUNNING
    assert await journal.start(lease, again) == 2
    assert await journal.steps(again, attempt=2) == [{"kind": "model", "n": 1}, {"kind": "tool", "n": 2}]
    assert await step_fields(redis, THREAD, "Ev1") == ["step:0", "step:1"]


async def test_a_step_is_never_journaled_over_an_earlier_one(queue: TaskQueue, redis: Redis) -> None:
    """A second process counting the journal afresh appends after the last step, never over it."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"))
    first, second = TaskJournal(redis, SPACE), TaskJournal(redis, SPACE)
    await first.start(lease, task)
    await first.record_step(lease, task, {"kind": "model", "n": 1})
    await second.record_step(lease, task, {"kind": "model", "n": 2})  # has not read steps(): counts what is there
    assert await second.steps(task, attempt=2) == [{"kind": "model", "n": 1}, {"kind": "model", "n": 2}]


async def test_a_step_written_twice_is_journaled_once(queue: TaskQueue, redis: Redis) -> None:
    """The same step sent again at the same number (a client resending a command whose first send ran) is taken as
    written, once; a different step at that number is still refused as a corrupt record."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"))
    first, resent, other = TaskJournal(redis, SPACE), TaskJournal(redis, SPACE), TaskJournal(redis, SPACE)
    await first.start(lease, task)
    step = {"kind": "model", "n": 1}
    for journal in (first, resent, other):
        await journal.steps(task, attempt=1)  # each counts from step 0
    await first.record_step(lease, task, step)
    await resent.record_step(lease, task, step)
    with pytest.raises(CorruptRecord, match="step 0 was journaled already"):
        await other.record_step(lease, task, {"kind": "model", "n": 2})
    assert await first.steps(task, attempt=2) == [step]
    assert await step_fields(redis, THREAD, "Ev1") == ["step:0"]


async def test_finishing_deletes_the_journal(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """The journal goes with the finished task, whether this process counted its steps or not."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"), make_task("Ev2"))
    await journal.start(lease, task)
    await journal.record_step(lease, task, {"kind": "model"})
    await journal.record_step(lease, task, {"kind": "model"})
    await TaskJournal(redis, SPACE).finish(lease, task, TaskStatus.DONE)  # another process: it does not know
    assert await step_fields(redis, THREAD, "Ev1") == []
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(lease, task)
    await journal.record_step(lease, task, {"kind": "model"})
    await journal.finish(lease, task, TaskStatus.DONE)  # this process counted one
    assert await step_fields(redis, THREAD, "Ev2") == []
    assert await redis.hget(SPACE.task(THREAD, "Ev2"), "status") == TaskStatus.DONE.value


async def test_reset_clears_the_agent(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finishing a reset task deletes the thread's state (and so its turns) and takes it out of the index."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"))
    await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q")])
    assert await redis.exists(SPACE.state(THREAD))
    lease, reset = await submit_and_lease(queue, make_task("Ev2", TaskKind.RESET))
    await journal.finish(lease, reset, TaskStatus.DONE, clear_agent=True)
    assert await ThreadStore(redis, SPACE).state(THREAD) is None
    assert await ThreadStore(redis, SPACE).turns(THREAD) == []
    assert await redis.exists(SPACE.state(THREAD)) == 0
    assert await redis.zscore(SPACE.thread_channel_threads(THREAD), THREAD.thread_ts) is None


async def test_no_key_is_left_without_a_ttl_after_reset_then_more_work(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A reset followed by a note and an answer leaves every per-team key with a TTL once the work is done."""
    lease, first = await submit_and_lease(queue, make_task("Ev1"))
    await journal.start(lease, first)
    await journal.finish(lease, first, TaskStatus.DONE, turns=[Turn("user", "q")])
    lease, _ = await submit_and_lease(
        queue, make_task("Ev2", TaskKind.RESET), make_task("Ev3", TaskKind.NOTE), make_task("Ev4")
    )
    while (task := await queue.head(THREAD)) is not None:
        await journal.start(lease, task)
        await journal.record_step(lease, task, {"kind": "model"})
        clear = task.task_id == "Ev2"
        await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", task.text)], clear_agent=clear)
    assert journal.released(lease)
    streams = set(SPACE.queues())
    for key in await redis.keys("*"):
        if key not in streams:
            assert await redis.ttl(key) > 0, key
    assert not await redis.exists(SPACE.queued(THREAD), SPACE.inbox(THREAD))
    state = await ThreadStore(redis, SPACE).state(THREAD)
    assert state is not None and state.turns == 2


async def test_channel_index_lists_agents_newest_first(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finished tasks put their thread in its shard's channel index, read newest first across shards; a reset
    takes it out."""
    assert SPACE.shard_of(ELSEWHERE) != SPACE.shard_of(THREAD) == SPACE.shard_of(OTHER)
    for task_id, thread in (("Ev1", THREAD), ("Ev2", ELSEWHERE), ("Ev3", OTHER)):
        lease, task = await submit_and_lease(queue, make_task(task_id, thread=thread))
        await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q")])
    store = ThreadStore(redis, SPACE)
    assert [ref for ref, _ in await store.channel_agents("T1", "C1")] == [OTHER, ELSEWHERE, THREAD]
    assert await store.channel_counts("T1", "C1") == ChannelCounts(agents=3)
    lease, reset = await submit_and_lease(queue, make_task("Ev4", TaskKind.RESET, thread=ELSEWHERE))
    await journal.finish(lease, reset, TaskStatus.DONE, clear_agent=True)
    assert [ref for ref, _ in await store.channel_agents("T1", "C1")] == [OTHER, THREAD]


async def test_a_fold_trims_the_window_and_stores_the_summary(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Finishing with a fold appends the new turns, drops that many of the oldest, and keeps the summary."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"))
    old = [Turn("user", f"old {n}") for n in range(4)]
    await journal.finish(lease, task, TaskStatus.DONE, turns=old)
    lease, task = await submit_and_lease(queue, make_task("Ev2"))
    await journal.record_step(lease, task, {"kind": "summary"})
    new = [Turn("user", "new q"), Turn("assistant", "new a")]
    await journal.finish(lease, task, TaskStatus.DONE, turns=new, fold=Fold(3, "summary of old 0-2"))
    store = ThreadStore(redis, SPACE)
    assert [turn.text for turn in await store.turns(THREAD)] == ["old 3", "new q", "new a"]
    state = await store.state(THREAD)
    assert state is not None
    assert (state.summary, state.summarized_turns, state.turns) == ("summary of old 0-2", 3, 6)
    turn_fields = sorted(name for name in await redis.hkeys(SPACE.state(THREAD)) if name.startswith(keys.TURN_FIELD))
    assert turn_fields == ["turn:3", "turn:4", "turn:5"]  # numbered from the agent's first turn
    assert await step_fields(redis, THREAD, "Ev2") == []  # the journal goes with the finished task


async def test_a_fold_never_empties_the_window(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """A fold asking to evict more turns than the window holds (a count made for another window) leaves the newest
    turn, and counts as summarized only the turns it took out."""
    lease, task = await submit_and_lease(queue, make_task("Ev1"))
    new = [Turn("user", "QUESTION", user_id="U1"), Turn("assistant", "ANSWER")]
    await journal.finish(lease, task, TaskStatus.DONE, turns=new, fold=Fold(90, "summary of other turns"))
    store = ThreadStore(redis, SPACE)
    assert [turn.text for turn in await store.turns(THREAD)] == ["ANSWER"]
    state = await store.state(THREAD)
    assert state is not None and (state.summarized_turns, state.turns) == (1, 2)


async def test_usage_adds_up_per_thread_and_per_channel(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Every usage counter is added to the thread's state and to its shard's channel totals, summed over shards."""
    usage = Usage(
        input_tokens=5, output_tokens=7, model_calls=1, cache_read_tokens=90, cache_write_tokens=11, cost_microusd=321
    )
    for task_id, thread in (("Ev1", THREAD), ("Ev2", OTHER), ("Ev3", ELSEWHERE)):
        lease, task = await submit_and_lease(queue, make_task(task_id, thread=thread))
        await journal.finish(lease, task, TaskStatus.DONE, usage=usage)
    store = ThreadStore(redis, SPACE)
    state = await store.state(THREAD)
    assert state is not None and state.usage == usage
    assert await store.channel_usage("T1", "C1") == usage + usage + usage
    assert Usage.from_fields(await redis.hgetall(SPACE.thread_channel_usage(ELSEWHERE))) == usage
    await store.clear_channel_usage("T1", "C1")
    assert await store.channel_usage("T1", "C1") == Usage()


async def test_the_channel_ttls_are_refreshed_once_a_day(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """The channel's usage and index get their TTL when created and on the first finish of a new day, not on
    every finish (the day is kept in the usage hash)."""
    usage_key, index_key = SPACE.thread_channel_usage(THREAD), SPACE.thread_channel_threads(THREAD)
    for task_id in ("Ev1", "Ev2"):
        lease, task = await submit_and_lease(queue, make_task(task_id))
        await journal.finish(lease, task, TaskStatus.DONE, usage=Usage(1, 1, 1))
        if task_id == "Ev1":
            assert await redis.ttl(usage_key) > 0 and await redis.ttl(index_key) > 0
            await redis.expire(usage_key, 100)
            await redis.expire(index_key, 100)
    assert 0 < await redis.ttl(usage_key) <= 100 and 0 < await redis.ttl(index_key) <= 100  # the same day
    await redis.hset(usage_key, "day", "0")  # as if the last finish was long ago
    lease, task = await submit_and_lease(queue, make_task("Ev3"))
    await journal.finish(lease, task, TaskStatus.DONE, usage=Usage(1, 1, 1))
    assert await redis.ttl(usage_key) > 100 and await redis.ttl(index_key) > 100


async def test_a_status_request_does_not_create_an_agent(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finishing a task that remembers nothing, in a thread without an agent, leaves the thread without one."""
    lease, task = await submit_and_lease(queue, make_task("Ev1", TaskKind.STATUS))
    assert await ThreadStore(redis, SPACE).state(THREAD) is None  # a status request is no agent, even queued
    await journal.start(lease, task)
    assert await journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False) is True
    assert await ThreadStore(redis, SPACE).state(THREAD) is None
    assert await redis.exists(SPACE.state(THREAD)) == 0
    assert await queue.head(THREAD) is None
