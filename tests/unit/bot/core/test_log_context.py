"""The ids of the work running now: set for a block or a task, private to each asyncio task, undone on leaving."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.core.log_context import LogContext, bind_task, current, logs_as_event, task_context, thread_context
from store.models import ThreadRef

A = ThreadRef("T1", "C1", "1700000000.000100")
B = ThreadRef("T2", "C2", "1700000099.000100")


def test_task_context_sets_the_ids_for_its_block_and_restores_what_was_there() -> None:
    """Inside the block the ids are the thread's and the task's; after it, the outer ones (or none) come back."""
    assert current() is None
    with task_context(A, "Ev1"):
        assert current() == LogContext("T1", "C1", "1700000000.000100", "Ev1")
        with task_context(B):
            assert current() == LogContext("T2", "C2", "1700000099.000100", None)
        assert current() == LogContext("T1", "C1", "1700000000.000100", "Ev1")
    assert current() is None


def test_task_context_is_restored_when_its_block_raises() -> None:
    """An exception leaving the block does not leave the ids behind."""
    try:
        with task_context(A, "Ev1"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert current() is None


async def test_tasks_started_in_a_thread_context_keep_their_own_ids() -> None:
    """Two thread workers running at once each see their own thread and task, and the caller sees neither."""
    seen: dict[str, list[LogContext | None]] = {"a": [], "b": []}

    async def work(name: str, task_id: str) -> None:
        seen[name].append(current())
        bind_task(task_id)
        await asyncio.sleep(0.01)  # the other worker binds its task meanwhile
        seen[name].append(current())

    await asyncio.gather(
        asyncio.create_task(work("a", "EvA"), context=thread_context(A)),
        asyncio.create_task(work("b", "EvB"), context=thread_context(B)),
    )
    assert seen["a"] == [LogContext("T1", "C1", A.thread_ts), LogContext("T1", "C1", A.thread_ts, "EvA")]
    assert seen["b"] == [LogContext("T2", "C2", B.thread_ts), LogContext("T2", "C2", B.thread_ts, "EvB")]
    assert current() is None


async def test_a_task_started_inside_a_context_inherits_it() -> None:
    """What a task starts (a stream, a timer) logs with the task's ids: asyncio copies the context at creation."""

    async def ids() -> LogContext | None:
        return current()

    with task_context(A, "Ev1"):
        started = asyncio.create_task(ids())
    assert await started == LogContext("T1", "C1", A.thread_ts, "Ev1")


def test_bind_task_outside_any_thread_does_nothing() -> None:
    """Binding a task id with no thread set leaves no half-filled ids behind."""
    bind_task("Ev1")
    assert current() is None


@dataclass(frozen=True)
class Message:
    """A stand-in for intake's IncomingMessage."""

    event_id: str
    ref: ThreadRef

    def thread(self) -> ThreadRef:
        """The message's thread."""
        return self.ref


class Handler:
    """Something that handles incoming messages, as intake does."""

    @logs_as_event
    async def handle(self, message: Message, extra: str) -> tuple[LogContext | None, str]:
        """Return the ids seen while handling, and the extra argument."""
        return current(), extra


async def test_logs_as_event_names_the_event_while_the_method_runs() -> None:
    """A decorated method runs with the event's thread and id as its ids, and passes its arguments through."""
    seen, extra = await Handler().handle(Message("Ev9", A), "x")
    assert seen == LogContext("T1", "C1", A.thread_ts, "Ev9") and extra == "x"
    assert current() is None
