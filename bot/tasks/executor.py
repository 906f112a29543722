"""Executing one task: count the attempt, then hand the task to the handler of its kind.

The handlers (answer.py, reset.py, small_tasks.py) sit in a table from task kind to handler, as arq keeps its
functions by name: a new kind of task is a new entry, not a new branch. Every handler is safe to run again: a
task interrupted anywhere (a crash, a restart) is executed again from the top, finds its journal, its reply
message and its status in Redis, and finishes with one visible reply.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.agent.steps import answer_so_far, loop_steps, parse_steps
from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from bot.tasks.split import PART_CHARS
from bot.tasks.stopping import stopped_text
from store.errors import TaskStopped
from store.journal import TaskJournal
from store.models import Task, TaskKind, TaskStatus, Turn
from store.tasks import ThreadLease

log = logging.getLogger(__name__)

# Tasks that show work in progress on their message (its session's status, or 👀) while they run.
SHOWS_WORK = (TaskKind.ANSWER, TaskKind.SCHEDULED)


class TaskHandler(Protocol):
    """Runs one kind of task to its end under the thread's lease; `attempt` is 1 on the first run."""

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Run the task (again, if attempt > 1: every step must be safe to repeat)."""
        ...


@dataclass(frozen=True)
class ExecutorSettings:
    """The parts of the configuration the executor needs."""

    max_attempts: int = 3


class TaskExecutor:
    """Runs one task to its end; safe to run again on a task that was interrupted."""

    def __init__(
        self,
        *,
        journal: TaskJournal,
        slack: SlackGateway,
        handlers: Mapping[TaskKind, TaskHandler],
        settings: ExecutorSettings,
    ) -> None:
        missing = [kind.value for kind in TaskKind if kind not in handlers]
        if missing:  # found when the process is built, not when the first such task comes
            raise ValueError(f"no handler for task kind(s): {', '.join(missing)}")
        self._journal = journal
        self._slack = slack
        self._handlers = dict(handlers)
        self._settings = settings

    async def execute(self, lease: ThreadLease, task: Task) -> None:
        """Run the task; one that has used up its attempts is failed with a message in its thread, and one a person
        stopped before it could run again is ended as stopped."""
        try:
            attempt = await self._journal.start(lease, task)
        except TaskStopped as stop:
            await self._end_stopped(lease, task, stop.by)
            return
        if attempt > self._settings.max_attempts:
            await self._give_up(lease, task, task.error or f"it failed {attempt - 1} times")
        else:
            await self._handlers[task.kind](lease, task, attempt=attempt)

    def released(self, lease: ThreadLease) -> bool:
        """Whether the task just executed gave the lease's thread back (it was the last in the inbox)."""
        return self._journal.released(lease)

    async def _end_stopped(self, lease: ThreadLease, task: Task, by: str) -> None:
        """A task stopped while it ran, and interrupted before it could end itself (its worker died, or the attempt
        failed): its message keeps what its journaled model calls had written, marked as stopped by whom, the history
        keeps the question and that, and its session (or 👀) no longer shows work."""
        log.info("task %s was stopped by %s before it could run again; ending it", task.task_id, by)
        written = answer_so_far(loop_steps(parse_steps(await self._journal.steps(task, attempt=2))))
        text = stopped_text(written[: PART_CHARS - 100], by)
        try:
            if task.reply_ts and task.reply_streamed:  # its stream may be open still: end it first
                with contextlib.suppress(SlackError):
                    await self._slack.stop_stream(task.thread, task.reply_ts, task_id=task.task_id)
            if task.reply_ts:  # unchecked: START checked the lease a moment ago
                await self._slack.update_message(task.thread, task.reply_ts, text)
        except SlackError as exc:  # best effort, as for a failure: the task ends either way
            log.warning("task %s: could not mark its message as stopped: %s", task.task_id, exc)
        if task.kind in SHOWS_WORK:
            await self._slack.set_working(task.thread, task.message_ts, False, user_id=task.user_id)
        turns = [Turn("user", task.text, user_id=task.user_id, ts=task.message_ts)]
        if task.reply_ts:
            turns.append(Turn("assistant", text, ts=task.reply_ts))
        await self._journal.finish(lease, task, TaskStatus.STOPPED, turns=turns)

    async def _give_up(self, lease: ThreadLease, task: Task, reason: str) -> None:
        log.error("task %s failed for good: %s", task.task_id, reason)
        why = reason[:1].upper() + reason[1:]
        message = f":warning: Sorry, I could not finish this request. {why}. Mention me again to retry."
        try:
            if task.reply_ts and task.reply_streamed:  # a crashed attempt's stream may be open still: end it first
                with contextlib.suppress(SlackError):
                    await self._slack.stop_stream(task.thread, task.reply_ts, task_id=task.task_id)
            if task.reply_ts:
                await self._slack.update_message(task.thread, task.reply_ts, message)
            elif task.kind in SHOWS_WORK:
                await self._slack.post_reply(task.thread, message)
        except SlackError as exc:
            # Telling the thread is best effort: the task is failed either way, so it cannot block its thread.
            log.warning("task %s: could not post the failure message: %s", task.task_id, exc)
        if task.kind in SHOWS_WORK:  # its session must not stay "processing" (never raises)
            await self._slack.set_working(task.thread, task.message_ts, False, user_id=task.user_id)
        await self._journal.finish(lease, task, TaskStatus.FAILED, error=reason)
