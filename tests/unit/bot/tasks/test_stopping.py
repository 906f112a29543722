"""RunningAnswers and the stop listener: what a stop notice does in the worker that runs the answer."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from bot.tasks.stopping import RunningAnswers, StopListener, stopped_text
from store.stops import StopNotice, StopRequests
from tests.fakes import wait_until
from tests.unit.store.conftest import SPACE, THREAD

KEY = THREAD.encode()


async def forever() -> None:
    """An answer's loop that would never end by itself."""
    await asyncio.Event().wait()


async def test_a_stop_cancels_the_registered_answer_and_remembers_who_asked() -> None:
    """stop() cancels the answer's task and stopped_by() names the asker until the answer unregisters."""
    answers = RunningAnswers()
    work = asyncio.create_task(forever())
    with answers.running(KEY, "Ev1", work):
        assert answers.stop(KEY, "Ev1", "U0BOB")
        assert answers.stopped_by(KEY, "Ev1") == "U0BOB"
        assert answers.stopped_by(KEY, "Ev2") is None
        with contextlib.suppress(asyncio.CancelledError):
            await work
        assert work.cancelled()
    assert answers.stopped_by(KEY, "Ev1") is None


async def test_a_stop_heard_before_the_answer_registers_cancels_it_at_once() -> None:
    """A notice that overtook the answer (it was still reading the thread) stops it as soon as it registers."""
    answers = RunningAnswers()
    assert not answers.stop(KEY, "Ev1", "U0BOB")
    work = asyncio.create_task(forever())
    with answers.running(KEY, "Ev1", work):
        with contextlib.suppress(asyncio.CancelledError):
            await work
        assert work.cancelled()
        assert answers.stopped_by(KEY, "Ev1") == "U0BOB"


async def test_stops_of_answers_that_never_came_are_forgotten() -> None:
    """A stop remembered for an answer that does not run here is dropped after the remembering time."""
    answers = RunningAnswers(remember_seconds=0.0)
    answers.stop(KEY, "Ev1", "U0BOB")
    await asyncio.sleep(0.01)
    answers.stop(KEY, "Ev2", "U0BOB")  # each stop forgets the old ones
    assert answers.stopped_by(KEY, "Ev1") is None
    work = asyncio.create_task(forever())
    with answers.running(KEY, "Ev1", work):
        await asyncio.sleep(0.01)
        assert not work.done()
    work.cancel()


def test_a_stopped_answer_keeps_what_it_showed_and_names_who_stopped_it() -> None:
    """The partial text, then the mark; the mark alone when nothing was shown."""
    assert stopped_text("Once upon a time  \n", "U0BOB") == "Once upon a time\n\n_Stopped by <@U0BOB>._"
    assert stopped_text("", "U0BOB") == "_Stopped by <@U0BOB>._"


async def test_the_listener_stops_the_answers_its_worker_is_told_of(redis: Redis) -> None:
    """A notice on the worker's own list reaches its RunningAnswers within the listener's wait; another worker's
    notices are not its business."""
    requests, answers = StopRequests(redis, SPACE), RunningAnswers()
    stopping = asyncio.Event()
    listener = asyncio.create_task(StopListener(requests, "worker.1", answers).run(stopping))
    work = asyncio.create_task(forever())
    with answers.running(KEY, "Ev1", work):
        await requests.notify("worker.2", StopNotice(KEY, "Ev1", "U0CAROL"))
        await requests.notify("worker.1", StopNotice(KEY, "Ev1", "U0BOB"))
        await wait_until(work.done, timeout=2)
        assert answers.stopped_by(KEY, "Ev1") == "U0BOB"
    stopping.set()
    await asyncio.wait_for(listener, timeout=3)  # it notices within its one-second wait
    assert await redis.llen("agent:{worker.2}:stops") == 1
