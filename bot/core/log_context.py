"""Which workspace, channel, thread and task the code running now works for, so that every log record says so.

A context variable, not an argument: the ids must reach the records of every layer and library (the gateway's, the
Anthropic client's, httpx's) without each call passing them on. asyncio gives each task a copy of the context as it
was when the task was created, so the runner's thread tasks and the streams they start carry their thread's ids, and
two threads worked on at once never see each other's. Setting the variable inside a task changes only that task's
copy; `task_context` puts back what was there before on leaving.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from store.models import ThreadRef


@dataclass(frozen=True)
class LogContext:
    """The ids a log record carries while a task or an event is handled (task_id None between tasks)."""

    team_id: str
    channel_id: str
    thread_ts: str
    task_id: str | None = None


_CURRENT: contextvars.ContextVar[LogContext | None] = contextvars.ContextVar("log_context", default=None)


def current() -> LogContext | None:
    """The ids of the work running now, or None outside any task or event."""
    return _CURRENT.get()


@contextmanager
def task_context(thread: ThreadRef, task_id: str | None = None) -> Iterator[LogContext]:
    """Within the block, records carry the thread's ids (and the task's); what was set before comes back after."""
    ids = LogContext(thread.team_id, thread.channel_id, thread.thread_ts, task_id)
    token = _CURRENT.set(ids)
    try:
        yield ids
    finally:
        _CURRENT.reset(token)


def thread_context(thread: ThreadRef) -> contextvars.Context:
    """A copy of the current context in which records carry the thread's ids: for `asyncio.create_task(context=)`,
    so that the task and everything it starts log as the thread's without a block around its whole body."""
    context = contextvars.copy_context()
    context.run(_CURRENT.set, LogContext(thread.team_id, thread.channel_id, thread.thread_ts))
    return context


def bind_task(task_id: str | None) -> None:
    """From now on in this asyncio task, records carry this task id (None: no task) beside the thread's ids.

    Only for code that runs in a task of its own (its context dies with it), such as a thread's worker started with
    thread_context(); elsewhere use task_context(), which undoes itself. Outside any thread context it does nothing.
    """
    ids = _CURRENT.get()
    if ids is not None:
        _CURRENT.set(replace(ids, task_id=task_id))


class Event(Protocol):
    """What an incoming Slack message offers to name itself in the logs."""

    @property
    def event_id(self) -> str:
        """Slack's id of the event: the id of the task it becomes."""
        ...

    def thread(self) -> ThreadRef:
        """The conversation the event belongs to."""
        ...


S = TypeVar("S")
E = TypeVar("E", bound=Event)
P = ParamSpec("P")
R = TypeVar("R")


def logs_as_event(
    method: Callable[Concatenate[S, E, P], Awaitable[R]],
) -> Callable[Concatenate[S, E, P], Awaitable[R]]:
    """Decorate a method taking an incoming event first: while it runs, records carry the event's thread and id.

    The event id is the task id of the task the event becomes, so intake's records and the task's share it.
    """

    @functools.wraps(method)
    async def handle(self: S, event: E, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with task_context(event.thread(), event.event_id):
            return await method(self, event, *args, **kwargs)

    return handle
