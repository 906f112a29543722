"""The message that carries an answer, and the one place that checks a task's lease before it writes to Slack.

A worker that stalled past its lease, or whose thread was reset since, must not write over what its successor
or the reset wrote: every write made on a task's behalf goes through GuardedSlack, which checks the lease first
(a Slack call cannot be fenced atomically like a Redis write; checking just before it is the next best thing).
The few writes that do not check say why beside them: the lease was checked a moment ago, or it cannot be.
"""

from __future__ import annotations

import functools
import logging

from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from bot.tasks.live import LiveReply
from bot.tasks.split import split_markdown
from store.errors import LeaseLost
from store.journal import TaskJournal
from store.models import Task, ThreadRef
from store.tasks import ThreadLease

log = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"
RESUMED_PLACEHOLDER = ":arrows_counterclockwise: I was restarted while working on this; picking it up again…"
WAITING_FOR_REDIS = (
    ":hourglass_flowing_sand: My memory (Redis) cannot be reached right now. I will finish this answer as soon "
    "as it is back; nothing is lost."
)


class GuardedSlack:
    """Slack writes in one task's thread that happen only while its worker still holds the thread's lease."""

    def __init__(self, slack: SlackGateway, journal: TaskJournal, lease: ThreadLease, thread: ThreadRef) -> None:
        self._slack = slack
        self._journal = journal
        self._lease = lease
        self._thread = thread

    async def post_reply(self, text: str) -> str:
        """Post a plain reply in the thread; returns its ts."""
        await self._journal.check_lease(self._lease)
        return await self._slack.post_reply(self._thread, text)

    async def update_message(self, ts: str, text: str) -> None:
        """Replace the text of a message the bot posted."""
        await self._journal.check_lease(self._lease)
        await self._slack.update_message(self._thread, ts, text)

    async def post_part(self, text: str, task_id: str, part: int) -> str:
        """Post part `part` of a long answer, tagged with its task; returns its ts."""
        await self._journal.check_lease(self._lease)
        return await self._slack.post_part(self._thread, text, task_id, part)

    async def post_reset_note(self, text: str, *, reset_at: float) -> str:
        """Post the note that the agent was reset at `reset_at` (a second reset since: that one tells the thread)."""
        await self._journal.check_lease(self._lease)
        return await self._slack.post_reset_note(self._thread, text, reset_at=reset_at)


class ReplyMessage:
    """The one message that carries a task's answer: its placeholder, its text, and a long answer's further parts.

    Every step is safe to run again: a resumed task finds its message (recorded, or by the task id in its
    metadata) and its parts instead of posting them twice.
    """

    def __init__(self, slack: SlackGateway, journal: TaskJournal, lease: ThreadLease, task: Task) -> None:
        self._slack = slack
        self._journal = journal
        self._lease = lease
        self._task = task
        self._guarded = GuardedSlack(slack, journal, lease, task.thread)
        self._ts: str | None = None  # known once open() has returned

    async def open(self, *, resumed: bool, answered: bool) -> str:
        """The message's ts: recorded, found again by its metadata, or a new placeholder."""
        task = self._task
        reply_ts = task.reply_ts
        if reply_ts is None and resumed:
            # A crash between posting the placeholder and recording its ts: the message says whose it is.
            reply_ts = await self._slack.find_task_message(task.thread, task.task_id, after_ts=task.message_ts)
            if reply_ts is not None:
                await self._record(reply_ts)
        if reply_ts is None:
            # Unchecked: recording it right after is fenced, and removes it if a reset cancelled the task meanwhile.
            text = RESUMED_PLACEHOLDER if resumed else PLACEHOLDER
            reply_ts = await self._slack.post_placeholder(task.thread, text, task.task_id)
            await self._record(reply_ts)
        elif resumed and not answered:  # unchecked: journal.start, a fenced write, took the lease a moment ago
            await self._slack.update_message(task.thread, reply_ts, RESUMED_PLACEHOLDER)
        self._ts = reply_ts
        return reply_ts

    async def show(self, text: str) -> None:
        """Replace the message's text (a reset meanwhile: its message is gone, say nothing)."""
        await self._guarded.update_message(self._opened(), text)

    def live(self) -> LiveReply:
        """The message as a preview of the answer while it streams in."""
        return LiveReply(functools.partial(self._guarded.update_message, self._opened()))

    async def deliver(self, text: str, *, resumed: bool) -> None:
        """Put the answer in its message, and a long one's further parts after it, each exactly once.

        The parts come from the journaled answer, so a resumed task cuts them the same way: a part already
        posted (recorded, or found by its metadata after a crash) is updated in place, never posted again.
        """
        task, reply_ts = self._task, self._opened()
        parts = split_markdown(text)
        await self._guarded.update_message(reply_ts, parts[0])  # a reset (or a takeover) since the last write
        posted = await self._journal.reply_parts(task) if len(parts) > 1 else {}
        for index, part in enumerate(parts[1:], start=1):
            ts = posted.get(index)
            if ts is None and resumed:
                ts = await self._slack.find_task_message(task.thread, task.task_id, after_ts=reply_ts, part=index)
            if ts is not None:  # unchecked: the first part was, and this is the journaled text once more
                await self._slack.update_message(task.thread, ts, part)
            else:
                ts = await self._guarded.post_part(part, task.task_id, index)
            if posted.get(index) != ts:
                await self._journal.set_reply_ts(self._lease, task, ts, part=index)

    async def tell_waiting_for_redis(self) -> None:
        """Tell the thread why its answer is late: the bot's storage is unreachable (the answer follows later)."""
        # Not checked: the lease is in Redis, which cannot be reached; the note is best effort.
        reply_ts = self._ts or self._task.reply_ts
        if reply_ts:
            try:
                await self._slack.update_message(self._task.thread, reply_ts, WAITING_FOR_REDIS)
            except SlackError as exc:
                log.info("task %s: could not say it is waiting for Redis: %s", self._task.task_id, exc)

    async def _record(self, reply_ts: str) -> None:
        """Record the task's message; if a reset cancelled the task meanwhile, remove the message instead."""
        try:
            await self._journal.set_reply_ts(self._lease, self._task, reply_ts)
        except LeaseLost:
            # The reset could not know this message, and nobody will finish it: remove it (the lease is lost already).
            if await self._journal.cancelled(self._task):
                await self._slack.delete_message(self._task.thread, reply_ts)
            raise

    def _opened(self) -> str:
        if self._ts is None:
            raise RuntimeError("the reply message is used before open()")
        return self._ts
