"""Resetting every agent of a channel, as a task of its own: resumable, one thread's atomic reset at a time.

A channel can hold thousands of agents spread over every shard, so no single step can reset them all. The
request queues one CHANNEL_RESET task (on the channel's CHANNEL_WIDE queue), and this handler resets the
channel's threads one by one, each with a reset task whose id derives from the channel reset's: a crash half
way resumes the task, and the threads already reset are found reset (their index entry gone) or their reset
deduplicated, so each thread is reset once and none is left half reset.
"""

from __future__ import annotations

import logging
import time

from store.journal import TaskJournal
from store.models import CHANNEL_WIDE, Task, TaskKind, TaskStatus, ThreadRef
from store.schedules import ScheduleStore
from store.tasks import SubmitResult, TaskQueue, ThreadLease
from store.threads import ThreadStore

log = logging.getLogger(__name__)


def thread_reset_id(channel_reset_id: str, thread_ts: str) -> str:
    """The id of the reset of one thread by a channel reset: the same on every run of that channel reset."""
    return f"{channel_reset_id}-{thread_ts}"


class ChannelResetter:
    """Resets every agent of a channel (TaskKind.CHANNEL_RESET), then the channel's usage totals."""

    def __init__(
        self, journal: TaskJournal, queue: TaskQueue, threads: ThreadStore, schedules: ScheduleStore | None = None
    ) -> None:
        self._journal = journal
        self._queue = queue
        self._threads = threads
        self._schedules = schedules  # the channel's schedules are cancelled with its agents (None: none to cancel)

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Reset each listed thread that has an agent or work, then forget the channel's usage."""
        team_id, channel_id = task.thread.team_id, task.thread.channel_id
        reset = 0
        for thread_ts in await self._threads.channel_threads(team_id, channel_id):
            if thread_ts == CHANNEL_WIDE:
                continue
            ref = ThreadRef(team_id, channel_id, thread_ts)
            if not await self._threads.has_agent(ref) and not await self._threads.current_task(ref):
                continue  # expired since it was listed: nothing to reset, no note to post
            await self._journal.check_lease(lease)  # a second channel reset took over: leave it the rest
            one = Task(
                thread_reset_id(task.task_id, thread_ts),
                TaskKind.RESET,
                ref,
                "reset",
                task.user_id,
                thread_ts,
                time.time(),
            )
            if (await self._queue.reset(one)).outcome is SubmitResult.ACCEPTED:
                reset += 1
        await self._threads.clear_channel_usage(team_id, channel_id)
        cancelled = await self._schedules.cancel_channel(team_id, channel_id) if self._schedules else 0
        log.info("channel reset %s: reset %d agent(s), cancelled %d schedule(s)", task.task_id, reset, cancelled)
        await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)
