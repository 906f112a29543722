"""Departures against a real Redis: a team's work cancelled without a note, its mark, and its coming back."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from store import keys
from store.errors import LeaseLost
from store.journal import TaskJournal
from store.leaving import Departures
from store.models import TaskStatus, ThreadRef
from store.tasks import TaskQueue
from tests.integration.redis_cluster import LocalCluster
from tests.unit.store.conftest import SPACE, THREAD, lease_on, make_groups, make_task, queue_empty

OTHER_TEAM_THREAD = ThreadRef("T2", THREAD.channel_id, THREAD.thread_ts)  # the same ids in another workspace
SECOND_THREAD = ThreadRef("T1", "C9", "1700000123.000100")
GRACE = 7 * keys.DAY


@pytest.fixture
def departures(redis: Redis) -> Departures:
    """The departures of the default key space, with a week's grace."""
    return Departures(redis, SPACE, grace_seconds=GRACE)


async def status(redis: Redis, ref: ThreadRef, task_id: str) -> str:
    """A task's recorded status."""
    return str(await redis.hget(SPACE.task(ref, task_id), "status"))


async def test_cancel_team_work_cancels_queued_and_running_tasks_and_fences_the_runner(
    queue: TaskQueue, journal: TaskJournal, departures: Departures, redis: Redis
) -> None:
    """A running task loses its lease at its next write, queued ones are cancelled, and no reset note is queued."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2"))
    await queue.submit(make_task("Ev3", thread=SECOND_THREAD))
    lease = await lease_on(queue)
    running = await queue.head(THREAD)
    assert running is not None
    await journal.start(lease, running)

    cancelled = await departures.cancel_team_work("T1")

    assert (cancelled.threads, cancelled.tasks) == (2, 3)
    assert [await status(redis, THREAD, "Ev1"), await status(redis, THREAD, "Ev2")] == ["cancelled", "cancelled"]
    assert await status(redis, SECOND_THREAD, "Ev3") == "cancelled"
    with pytest.raises(LeaseLost):
        await journal.set_reply_ts(lease, running, "1700000002.000100")
    assert await queue.head(THREAD) is None
    assert await queue_empty(redis)


async def test_cancel_team_work_leaves_other_teams_alone(
    queue: TaskQueue, departures: Departures, redis: Redis
) -> None:
    """Another workspace's thread with the same channel and thread ids keeps its work."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2", thread=OTHER_TEAM_THREAD))

    cancelled = await departures.cancel_team_work("T1")

    assert cancelled.tasks == 1
    assert await status(redis, OTHER_TEAM_THREAD, "Ev2") == TaskStatus.QUEUED.value
    head = await queue.head(OTHER_TEAM_THREAD)
    assert head is not None and head.task_id == "Ev2"
    assert await queue.threads_with_work("T2") == 1


async def test_cancel_keeps_the_agents_memory_for_the_grace_period(
    queue: TaskQueue, journal: TaskJournal, departures: Departures, redis: Redis
) -> None:
    """The agent's state survives the cancel: the team may install the app again within the grace period."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    task = await queue.head(THREAD)
    assert task is not None
    await journal.start(lease, task)
    await journal.finish(lease, task, TaskStatus.DONE)
    await queue.submit(make_task("Ev2"))

    await departures.cancel_team_work("T1")

    assert await redis.exists(SPACE.state(THREAD))


async def test_a_thread_queued_again_after_the_cancel_works_as_usual(queue: TaskQueue, departures: Departures) -> None:
    """Cancelling leaves no flag behind: a later submit gives the thread a fresh entry."""
    await queue.submit(make_task("Ev1"))
    await departures.cancel_team_work("T1")

    await queue.submit(make_task("Ev2"))

    lease = await lease_on(queue)
    head = await queue.head(lease.thread)
    assert head is not None and head.task_id == "Ev2"


async def test_mark_left_refuses_until_the_team_comes_back(departures: Departures, redis: Redis) -> None:
    """The mark is set with a TTL past the grace period and scheduled for the sweep; an install clears both."""
    await departures.mark_left("T1", at=1000.0)

    assert await departures.has_left("T1")
    assert not await departures.has_left("T2")
    assert GRACE < await redis.ttl(keys.team_left("T1")) <= GRACE + keys.DAY
    assert await redis.zscore(keys.LEAVING, "T1") == 1000.0

    await departures.came_back("T1")

    assert not await departures.has_left("T1")
    assert await redis.zscore(keys.LEAVING, "T1") is None


async def test_the_sweep_deletes_a_due_teams_data_but_not_its_installations_nor_other_teams(
    queue: TaskQueue, journal: TaskJournal, departures: Departures, redis: Redis
) -> None:
    """Once the grace period is over, the team's agents, tasks and mark go; its installations (a reinstall's) and
    another team's data stay, and a team still within its grace is not touched."""
    for task_id, thread in (("Ev1", THREAD), ("Ev2", OTHER_TEAM_THREAD)):
        await queue.submit(make_task(task_id, thread=thread))
        lease = await lease_on(queue, thread)
        task = await queue.head(thread)
        assert task is not None
        await journal.start(lease, task)
        await journal.finish(lease, task, TaskStatus.DONE)
    await redis.hset(keys.installations("T1"), "latest", "{}")
    await departures.mark_left("T1", at=1000.0)
    await departures.mark_left("T2", at=1000.0 + GRACE)

    assert await departures.sweep(now=1001.0 + GRACE) == ["T1"]

    assert sorted(await redis.keys("agent:T1:*")) == [keys.installations("T1")]
    assert await redis.exists(SPACE.state(OTHER_TEAM_THREAD))
    assert await departures.due_teams(now=1001.0 + GRACE) == []


async def test_the_sweep_deletes_the_org_links_an_uninstall_left(departures: Departures, redis: Redis) -> None:
    """An org-wide install's uninstall keeps its list of teams and their links to it through the grace period; once
    it is over they go, with nothing else in their hashes to keep."""
    await redis.hset(keys.installations("E1"), "team:T1", "1")
    await redis.hset(keys.installations("T1"), "org", "E1")
    for owner in ("E1", "T1"):
        await departures.mark_left(owner, at=1000.0)

    assert sorted(await departures.sweep(now=1001.0 + GRACE)) == ["E1", "T1"]

    assert await redis.keys("agent:E1:*") == [] and await redis.keys("agent:T1:*") == []


async def test_a_team_that_came_back_is_not_deleted(queue: TaskQueue, departures: Departures, redis: Redis) -> None:
    """A team that installed the app again is off the schedule: the sweep leaves its data."""
    await queue.submit(make_task("Ev1"))
    await departures.mark_left("T1", at=1000.0)
    await departures.came_back("T1")

    assert await departures.sweep(now=1001.0 + GRACE) == []
    assert await departures.delete_team_data("T1") == 0
    assert await redis.exists(SPACE.task(THREAD, "Ev1"))


async def test_on_a_cluster_work_is_cancelled_and_a_due_teams_data_swept(redis_cluster: LocalCluster) -> None:
    """On a three-master Redis Cluster each thread's cancel runs on its shard's node, and the sweep finds and
    deletes the team's keys on every node, its installations and the other team's data kept."""
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        queue, departures = TaskQueue(client, SPACE), Departures(client, SPACE, grace_seconds=GRACE)
        await make_groups(queue)
        threads = [ThreadRef("T1", f"C{number}", "1700000000.000100") for number in range(8)]
        for number, thread in enumerate([*threads, OTHER_TEAM_THREAD]):
            await queue.submit(make_task(f"Ev{number}", thread=thread))
        await client.hset(keys.installations("T1"), "latest", "{}")
        await departures.mark_left("T1", at=1000.0)

        cancelled = await departures.cancel_team_work("T1")
        assert (cancelled.threads, cancelled.tasks) == (8, 8)
        assert await departures.sweep(now=1001.0 + GRACE) == ["T1"]

        remaining = [key async for key in client.scan_iter(match="agent:T1:*")]
        assert remaining == [keys.installations("T1")]
        assert await queue.threads_with_work("T2") == 1
    finally:
        await client.aclose()
