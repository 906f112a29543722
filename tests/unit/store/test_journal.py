"""TaskJournal against a real Redis: attempts, steps, finishing, and what finishing writes."""

from __future__ import annotations

from redis.asyncio import Redis

from store import keys
from store.journal import Fold, TaskJournal
from store.models import TaskKind, TaskStatus, Turn, Usage
from store.tasks import TaskQueue
from store.threads import ThreadStore
from tests.unit.store.conftest import OTHER, THREAD, lease_on, make_task


async def test_finish_writes_turns_and_usage_once(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finishing a task twice (a resumed task) writes its turns and counts its usage only once."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    turns = [Turn("user", "q", user_id="U1"), Turn("assistant", "a")]
    assert await journal.finish(lease, task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1)) is True
    assert await journal.finish(lease, task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1)) is False
    store = ThreadStore(redis)
    assert await store.turns(THREAD) == turns
    state = await store.state(THREAD)
    assert state is not None
    assert (state.turns, state.tasks_done, state.usage) == (2, 1, Usage(10, 5, 1))


async def test_steps_are_journaled_in_order_and_counted_attempts(queue: TaskQueue, journal: TaskJournal) -> None:
    """Each recorded step is read back in order, and every start counts one more attempt."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    assert await journal.start(lease, task) == 1
    await journal.record_step(lease, task, {"kind": "model", "n": 1})
    await journal.record_step(lease, task, {"kind": "tool", "n": 2})
    assert await journal.start(lease, task) == 2
    assert await journal.steps(task) == [{"kind": "model", "n": 1}, {"kind": "tool", "n": 2}]


async def test_reset_clears_the_agent(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finishing a reset task deletes the thread's state and turns."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q")])
    await queue.submit(make_task("Ev2", TaskKind.RESET))
    reset = await queue.head(THREAD)
    assert reset is not None
    await journal.finish(lease, reset, TaskStatus.DONE, clear_agent=True)
    assert await ThreadStore(redis).state(THREAD) is None
    assert await redis.exists(keys.turns(THREAD)) == 0


async def test_no_key_is_left_without_a_ttl_after_reset_then_more_work(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """A reset followed by a note and an answer leaves every per-team key with a TTL."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    first = await queue.head(THREAD)
    assert first is not None
    await journal.start(lease, first)
    await journal.finish(lease, first, TaskStatus.DONE, turns=[Turn("user", "q")])
    for task in (make_task("Ev2", TaskKind.RESET), make_task("Ev3", TaskKind.NOTE), make_task("Ev4")):
        await queue.submit(task)
    while (task := await queue.head(THREAD)) is not None:
        await journal.start(lease, task)
        await journal.record_step(lease, task, {"kind": "model"})
        clear = task.task_id == "Ev2"
        await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", task.text)], clear_agent=clear)
    for key in await redis.keys("*"):
        if key not in (keys.QUEUE, keys.queued(THREAD)):
            assert await redis.ttl(key) > 0, key
    state = await ThreadStore(redis).state(THREAD)
    assert state is not None and state.turns == 2


async def test_channel_index_lists_agents_newest_first(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finished tasks put their thread in the channel's index; a reset takes it out."""
    for task_id, thread in (("Ev1", THREAD), ("Ev2", OTHER)):
        await queue.submit(make_task(task_id, thread=thread))
        lease = await lease_on(queue, thread)
        task = await queue.head(thread)
        assert task is not None
        await journal.finish(lease, task, TaskStatus.DONE, turns=[Turn("user", "q")])
    store = ThreadStore(redis)
    assert [ref for ref, _ in await store.channel_agents("T1", "C1")] == [OTHER, THREAD]
    await queue.submit(make_task("Ev3", TaskKind.RESET, thread=OTHER))
    reset = await queue.head(OTHER)
    assert reset is not None
    await journal.finish(lease, reset, TaskStatus.DONE, clear_agent=True)
    assert [ref for ref, _ in await store.channel_agents("T1", "C1")] == [THREAD]


async def test_a_fold_trims_the_window_and_stores_the_summary(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Finishing with a fold appends the new turns, drops that many of the oldest, and keeps the summary."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    old = [Turn("user", f"old {n}") for n in range(4)]
    await journal.finish(lease, task, TaskStatus.DONE, turns=old)
    await queue.submit(make_task("Ev2"))
    task = await queue.head(THREAD)
    assert task is not None
    await journal.record_step(lease, task, {"kind": "summary"})
    new = [Turn("user", "new q"), Turn("assistant", "new a")]
    await journal.finish(lease, task, TaskStatus.DONE, turns=new, fold=Fold(3, "summary of old 0-2"))
    store = ThreadStore(redis)
    assert [turn.text for turn in await store.turns(THREAD)] == ["old 3", "new q", "new a"]
    state = await store.state(THREAD)
    assert state is not None
    assert (state.summary, state.summarized_turns, state.turns) == ("summary of old 0-2", 3, 6)
    assert await redis.exists(keys.steps("T1", "Ev2")) == 0  # the journal goes with the finished task


async def test_a_fold_never_empties_the_window(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """A fold asking to evict more turns than the window holds (a count made for another window) leaves the newest
    turn, and counts as summarized only the turns it took out."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    new = [Turn("user", "QUESTION", user_id="U1"), Turn("assistant", "ANSWER")]
    await journal.finish(lease, task, TaskStatus.DONE, turns=new, fold=Fold(90, "summary of other turns"))
    store = ThreadStore(redis)
    assert [turn.text for turn in await store.turns(THREAD)] == ["ANSWER"]
    state = await store.state(THREAD)
    assert state is not None and (state.summarized_turns, state.turns) == (1, 2)


async def test_usage_adds_up_per_thread_and_per_channel(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Every usage counter is added to the thread's state and to its channel's totals."""
    usage = Usage(
        input_tokens=5, output_tokens=7, model_calls=1, cache_read_tokens=90, cache_write_tokens=11, cost_microusd=321
    )
    for task_id, thread in (("Ev1", THREAD), ("Ev2", OTHER)):
        await queue.submit(make_task(task_id, thread=thread))
        lease = await lease_on(queue, thread)
        task = await queue.head(thread)
        assert task is not None
        await journal.finish(lease, task, TaskStatus.DONE, usage=usage)
    store = ThreadStore(redis)
    state = await store.state(THREAD)
    assert state is not None and state.usage == usage
    assert await store.channel_usage("T1", "C1") == usage + usage


async def test_a_status_request_does_not_create_an_agent(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """Finishing a task that remembers nothing, in a thread without an agent, leaves the thread without one."""
    await queue.submit(make_task("Ev1", TaskKind.STATUS))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(lease, task)
    assert await journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False) is True
    assert await ThreadStore(redis).state(THREAD) is None
    assert await queue.head(THREAD) is None
