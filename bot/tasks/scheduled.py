"""A scheduled run (TaskKind.SCHEDULED): a timer the agent set came due, and the agent acts on its note.

The run is an answer whose question is the note, with which schedule and run it is and how it ends, posted in
the thread by the same path as any answer (bot/tasks/answer.py): journaled, resumable, stoppable, and charged to the
schedule's creator's budget as their mention would be. How it ended is recorded on its schedule, once per run, so
that a recurring schedule that fails several times in a row pauses itself and says so in the thread.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.core.clock import Clock, SystemClock
from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from bot.tasks.executor import TaskHandler
from bot.tasks.gate import AllowLists
from bot.tasks.schedule_text import note_start
from store.connection import REDIS_FAILURES
from store.errors import LeaseLost
from store.journal import TaskJournal
from store.models import Task, TaskKind, TaskStatus
from store.schedules import Schedule, ScheduleStore, schedule_of_task
from store.tasks import ThreadLease

log = logging.getLogger(__name__)


def scheduled_question(note: str, schedule_id: str | None = None, schedule: Schedule | None = None) -> str:
    """The question a scheduled run asks the agent: its own note, marked as such, with which schedule and run it is
    and how it ends (`schedule` None: it has no runs left, a one-off's case), so that the agent knows it is a
    follow-up and, for one that runs until its goal is met, to cancel it once it is."""
    about = [f"A follow-up you scheduled in this thread (schedule {schedule_id}) is due now"]
    if schedule is None or not schedule.recurring:
        about.append("it has no further runs")
    else:
        run = f"run {schedule.fired}" + (f" of {schedule.count}" if schedule.count is not None else "")
        how = f"every {schedule.every / 60:g} minutes" if schedule.every is not None else f"by cron {schedule.cron!r}"
        about.append(f"this is its {run}; it recurs {how}")
        if schedule.until_goal:
            about.append(
                "it runs until its goal is met: if the goal is met now, call the schedule tool with action=cancel, "
                f"schedule_id={schedule_id} and a reason saying so; otherwise it runs again"
            )
    about.append("your answer is posted in the thread")
    return f"({'; '.join(about)}. Your note to yourself:) {note}"


def paused_notice(note: str, failures: int) -> str:
    """What the thread is told when a recurring schedule pauses itself."""
    short = note_start(note)  # the model's words: escaped, so a note cannot ping the channel
    return (
        f":pause_button: I paused a recurring follow-up after its last {failures} runs failed in a row: _{short}_. "
        "It runs again once someone resumes it."
    )


class ScheduledRunner:
    """Runs a due timer's note as an answer, then records how the run ended on its schedule."""

    def __init__(
        self,
        *,
        answerer: TaskHandler,
        journal: TaskJournal,
        schedules: ScheduleStore,
        slack: SlackGateway,
        max_attempts: int,
        clock: Clock | None = None,
        allow_lists: AllowLists | None = None,
    ) -> None:
        self._answerer = answerer
        self._journal = journal
        self._allow_lists = allow_lists or AllowLists()
        self._clock = clock or SystemClock()
        self._schedules = schedules
        self._slack = slack
        self._max_attempts = max_attempts

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Answer the note; a run that ends failed (or whose last attempt raises) counts as a failure. A cron
        schedule's run times are topped up first (its list runs out only if its runs stop coming)."""
        schedule_id = schedule_of_task(task.task_id)
        schedule = None
        if schedule_id is not None:
            await self._schedules.refill_cron(task.thread, schedule_id, self._clock.now())
            schedule = await self._schedules.get(task.thread, schedule_id)
            if not self._allow_lists.allow(task.thread.channel_id, task.user_id):
                # Its creator or its channel was taken off ALLOWED_USER_IDS / ALLOWED_CHANNEL_IDS since it was made:
                # it ends here, as a mention of theirs would be refused.
                log.info("task %s: schedule %s is no longer allowed here; cancelling it", task.task_id, schedule_id)
                await self._schedules.cancel(task.thread, schedule_id)
                await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)
                return
            if schedule is None and not await self._schedules.ends_its_schedule(task.thread, task.task_id):
                # Cancelled (the goal met, Cancel, Stop, a reset) after this run was queued: it does not run.
                log.info("task %s: its schedule %s was cancelled; not running it", task.task_id, schedule_id)
                await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)
                return
        text = scheduled_question(task.text, schedule_id, schedule)
        question = replace(task, kind=TaskKind.ANSWER, text=text)
        try:
            await self._answerer(lease, question, attempt=attempt)
        except LeaseLost:
            raise  # not the run's fault: it goes on elsewhere
        except REDIS_FAILURES:
            raise  # nor this: it goes on once Redis is back
        except Exception:
            if attempt >= self._max_attempts:  # the executor fails it for good at its next start
                await self._record(task, ok=False)
            raise
        status = await self._schedules.run_status(task.thread, task.task_id)
        if status in (TaskStatus.DONE, TaskStatus.STOPPED, TaskStatus.FAILED):
            await self._record(task, ok=status is not TaskStatus.FAILED)

    async def _record(self, task: Task, *, ok: bool) -> None:
        schedule_id = schedule_of_task(task.task_id)
        if schedule_id is None:  # not a timer's task: nothing to record it on
            return
        if not await self._schedules.record_outcome(task.thread, schedule_id, task.task_id, ok=ok):
            return
        log.warning("schedule %s paused itself after failing %d times in a row", schedule_id, self._most_failures)
        try:  # once: record_outcome pauses a schedule once; a crash right here loses the notice, never doubles it
            await self._slack.post_reply(task.thread, paused_notice(task.text, self._most_failures))
        except SlackError as exc:
            log.warning("could not tell thread %s that a schedule paused: %s", task.thread.encode(), exc)

    @property
    def _most_failures(self) -> int:
        return self._schedules.limits.max_failures
