"""A reset's visible half: remove the messages of the answers it cancelled, and tell the thread.

The agent itself was cleared when the reset was recorded (store/tasks.py), so nothing queued before it can
answer from the old memory; this task only tidies up and says so, and is safe to run again.
"""

from __future__ import annotations

import logging

from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from bot.tasks.reply import GuardedSlack
from store.journal import ResetCleanup, TaskJournal
from store.models import Task, TaskStatus
from store.tasks import ThreadLease

log = logging.getLogger(__name__)

START_AFRESH = "Mention me to start afresh."


class ResetAnnouncer:
    """Announces a reset (TaskKind.RESET) once its cancelled answers' messages are gone."""

    def __init__(self, journal: TaskJournal, slack: SlackGateway) -> None:
        self._journal = journal
        self._slack = slack

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Remove the cancelled answers' messages, then post the reset note under the lease."""
        cleanup = await self._journal.reset_cleanup(task)
        if cleanup is None:  # queued by an older release, which cleared the agent only when the reset ran
            await self._journal.finish(lease, task, TaskStatus.DONE, clear_agent=True)
        else:
            await self._remove_leftovers(task, cleanup)
        note = f"<@{task.user_id}> reset this thread's agent: I have forgotten what was said here. {START_AFRESH}"
        guarded = GuardedSlack(self._slack, self._journal, lease, task.thread)
        await guarded.post_reset_note(note, reset_at=task.created_at)  # a second reset since: that one tells the thread
        if cleanup is not None:
            await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)

    async def _remove_leftovers(self, task: Task, cleanup: ResetCleanup) -> None:
        """Delete the messages of the answers the reset cancelled, found by ts or by their task id."""
        leftovers = list(cleanup.reply_ts)
        for task_id in cleanup.unrecorded_task_ids:  # a crash came between posting and recording
            found = await self._slack.find_task_message(task.thread, task_id, after_ts=task.message_ts)
            leftovers += [found] if found else []
        for reply_ts in leftovers:
            try:
                await self._slack.delete_message(task.thread, reply_ts)
            except SlackError as exc:  # a leftover "Thinking…" is untidy, not worth failing the reset for
                log.warning("task %s: could not remove a cancelled answer's message: %s", task.task_id, exc)
