"""What a scheduled run tells the model: that it is a follow-up, which schedule and run, how it ends, and for one
that runs until its goal is met, to cancel it with a reason once it is."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from bot.tasks.gate import AllowLists
from bot.tasks.scheduled import ScheduledRunner, scheduled_question
from store.keys import KeySpace
from store.models import Task, TaskKind, ThreadRef
from store.schedules import Schedule, ScheduleSpec, ScheduleStore

THREAD = ThreadRef("T1", "C1", "1700000000.000100")


def schedule(**more: object) -> Schedule:
    """A recurring schedule after its third run."""
    fields: dict[str, object] = {
        "schedule_id": "abc",
        "thread": THREAD,
        "kind": "every",
        "next_at": 1.0,
        "note": "is the deploy green?",
        "created_by": "U1",
        "created_at": 0.0,
        "ends_at": 2.0,
        "every": 600.0,
        "fired": 3,
    }
    return Schedule(**{**fields, **more})  # type: ignore[arg-type]


def test_a_run_until_the_goal_is_met_asks_to_cancel_with_a_reason_once_it_is() -> None:
    """Its id, its run, how it recurs, and the cancel call to make; the note last."""
    text = scheduled_question("is the deploy green?", "abc", schedule(until_goal=True))
    assert "schedule abc" in text and "run 3" in text and "every 10 minutes" in text
    assert "action=cancel, schedule_id=abc and a reason" in text
    assert text.endswith("Your note to yourself:) is the deploy green?")


def test_a_counted_cron_run_and_a_one_off() -> None:
    """run N of COUNT, by cron; a one-off (its schedule gone once fired) has no further runs and no cancel."""
    counted = scheduled_question("x", "abc", schedule(kind="cron", every=None, cron="0 9 * * *", count=5))
    assert "run 3 of 5" in counted and "by cron '0 9 * * *'" in counted and "cancel" not in counted
    once = scheduled_question("x", "abc", None)
    assert "no further runs" in once and "cancel" not in once and "posted in the thread" in once


class Recorder:
    """The answerer and the journal of a scheduled run, noting what it was asked to do."""

    def __init__(self) -> None:
        self.answered: list[str] = []
        self.finished: list[str] = []

    async def __call__(self, lease: object, task: object, *, attempt: int) -> None:
        self.answered.append(task.task_id)  # type: ignore[attr-defined]

    async def finish(self, lease: object, task: object, status: object, **_: object) -> bool:
        self.finished.append(task.task_id)  # type: ignore[attr-defined]
        return True


async def test_a_run_queued_before_its_schedule_was_cancelled_does_not_answer(redis: Redis) -> None:
    """Cancel (the goal met, a person's Cancel, Stop, a reset) after a run was queued: the run finds its schedule
    gone without being its last, and ends without answering; a one-off's own last run still answers."""
    store, recorder = ScheduleStore(redis, KeySpace()), Recorder()
    runner = ScheduledRunner(
        answerer=recorder,  # type: ignore[arg-type]
        journal=recorder,  # type: ignore[arg-type]
        schedules=store,
        slack=None,  # type: ignore[arg-type]
        max_attempts=3,
    )
    now = time.time()
    for spec in (ScheduleSpec(THREAD, now, "look again", "U1", every=600.0), ScheduleSpec(THREAD, now, "once", "U1")):
        made = await store.create(spec, now)
        await store.fire(store.space.shard_of(THREAD), await store.due(store.space.shard_of(THREAD), now, 10), now)
        task_id = [str(tid) for tid in await redis.lrange(store.space.inbox(THREAD), 0, -1)][-1]
        await store.cancel(THREAD, made.schedule_id)
        task = Task(task_id, TaskKind.SCHEDULED, THREAD, spec.note, "U1", THREAD.thread_ts, now)
        await runner(None, task, attempt=1)  # type: ignore[arg-type]
    recurring, once = [str(tid) for tid in await redis.lrange(store.space.inbox(THREAD), 0, -1)]
    assert recorder.finished == [recurring] and recorder.answered == [once]


async def test_a_schedule_whose_creator_is_no_longer_allowed_ends_at_its_next_run(redis: Redis) -> None:
    """Taken off ALLOWED_USER_IDS after making it: the next run does not answer, and the schedule is cancelled."""
    store, recorder = ScheduleStore(redis, KeySpace()), Recorder()
    runner = ScheduledRunner(
        answerer=recorder,  # type: ignore[arg-type]
        journal=recorder,  # type: ignore[arg-type]
        schedules=store,
        slack=None,  # type: ignore[arg-type]
        max_attempts=3,
        allow_lists=AllowLists.of([], ["U2"]),
    )
    now = time.time()
    made = await store.create(ScheduleSpec(THREAD, now, "look again", "U1", every=600.0), now)
    await store.fire(store.space.shard_of(THREAD), await store.due(store.space.shard_of(THREAD), now, 10), now)
    [task_id] = [str(tid) for tid in await redis.lrange(store.space.inbox(THREAD), 0, -1)]
    await runner(None, Task(task_id, TaskKind.SCHEDULED, THREAD, "look again", "U1", "1.0", now), attempt=1)  # type: ignore[arg-type]
    assert recorder.answered == [] and recorder.finished == [task_id]
    assert await store.get(THREAD, made.schedule_id) is None
