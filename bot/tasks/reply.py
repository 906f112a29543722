"""The message that carries an answer, and the one place that checks a task's lease before it writes to Slack.

A worker that stalled past its lease, or whose thread was reset since, must not write over what its successor
or the reset wrote: every write made on a task's behalf goes through GuardedSlack, which checks the lease first
(a Slack call cannot be fenced atomically like a Redis write; checking just before it is the next best thing).
The few writes that do not check say why beside them: the lease was checked a moment ago, or it cannot be.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Sequence

from bot.core.errors import SlackError, StreamClosed
from bot.core.ports import SlackGateway, TaskUpdate
from bot.tasks.live import LiveReply
from bot.tasks.split import PART_CHARS, split_markdown
from bot.tasks.stopping import stopped_text
from bot.tasks.stream import READING, StreamedReply
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

    async def update_message(self, ts: str, text: str, *, feedback: bool = False) -> None:
        """Replace the text of a message the bot posted."""
        await self._journal.check_lease(self._lease)
        await self._slack.update_message(self._thread, ts, text, feedback=feedback)

    async def post_part(self, text: str, task_id: str, part: int, *, feedback: bool = False) -> str:
        """Post part `part` of a long answer, tagged with its task; returns its ts."""
        await self._journal.check_lease(self._lease)
        return await self._slack.post_part(self._thread, text, task_id, part, feedback=feedback)

    async def append_stream(self, ts: str, text: str, updates: Sequence[TaskUpdate]) -> None:
        """Append to the task's streamed answer."""
        await self._journal.check_lease(self._lease)
        await self._slack.append_stream(self._thread, ts, text=text, updates=updates)

    async def stop_stream(
        self, ts: str, task_id: str, *, text: str = "", updates: Sequence[TaskUpdate] = (), feedback: bool = False
    ) -> None:
        """End the task's streamed answer with `text` (and the feedback buttons if asked)."""
        await self._journal.check_lease(self._lease)
        await self._slack.stop_stream(self._thread, ts, task_id=task_id, text=text, updates=updates, feedback=feedback)

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
        self._stream: StreamedReply | None = None  # while the answer streams into its message
        self._live: StreamedReply | LiveReply | None = None

    async def open(self, *, resumed: bool, answered: bool) -> str:
        """The message's ts: recorded, found again by its metadata, a new streamed answer, or a new placeholder."""
        task = self._task
        reply_ts = task.reply_ts
        streamed = task.reply_streamed
        if reply_ts is None and resumed:
            # A crash between posting the message (placeholder or stream) and recording its ts: it says whose it is.
            reply_ts = await self._slack.find_task_message(task.thread, task.task_id, after_ts=task.message_ts)
            if reply_ts is not None:
                await self._record(reply_ts)
                streamed = True  # it may be a stream: ending one that is not is refused, and harmless
        if reply_ts is not None and streamed:
            # Resumed after a crash mid-stream: end that stream (Slack may have already); this attempt updates the same
            # message instead, so that the answer never arrives twice. Unchecked: journal.start took the lease just now.
            with contextlib.suppress(SlackError):
                await self._slack.stop_stream(task.thread, reply_ts, task_id=task.task_id, updates=_all_done())
        if reply_ts is None and not resumed:
            # Unchecked, like the placeholder below: recording it right after is fenced.
            reply_ts = await self._slack.start_stream(
                task.thread, user_id=task.user_id, task_id=task.task_id, updates=[READING]
            )
            if reply_ts is not None:
                await self._record(reply_ts, streamed=True)
                self._stream = StreamedReply(functools.partial(self._guarded.append_stream, reply_ts))
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
        await self._end_stream()
        await self._guarded.update_message(self._opened(), text)

    def live(self) -> StreamedReply | LiveReply:
        """The message as a view of the answer while it is written: streamed where Slack streams it, else updated."""
        if self._live is None:
            self._live = self._stream or LiveReply(functools.partial(self._guarded.update_message, self._opened()))
        return self._live

    async def deliver(self, text: str, *, resumed: bool) -> None:
        """Put the answer in its message, and a long one's further parts after it, each exactly once; the last
        message ends with the feedback buttons.

        The parts come from the journaled answer, so a resumed task cuts them the same way: a part already
        posted (recorded, or found by its metadata after a crash) is updated in place, never posted again.
        """
        task, reply_ts = self._task, self._opened()
        parts = split_markdown(text)
        last = len(parts) - 1
        if not await self._finish_stream(parts[0], feedback=last == 0):
            await self._guarded.update_message(reply_ts, parts[0], feedback=last == 0)  # a reset or takeover since
        posted = await self._journal.reply_parts(task) if len(parts) > 1 else {}
        for index, part in enumerate(parts[1:], start=1):
            ts = posted.get(index)
            if ts is None and resumed:
                ts = await self._slack.find_task_message(task.thread, task.task_id, after_ts=reply_ts, part=index)
            if ts is not None:  # unchecked: the first part was, and this is the journaled text once more
                await self._slack.update_message(task.thread, ts, part, feedback=index == last)
            else:
                ts = await self._guarded.post_part(part, task.task_id, index, feedback=index == last)
            if posted.get(index) != ts:
                await self._journal.set_reply_ts(self._lease, task, ts, part=index)

    async def stopped(self, by: str) -> str:
        """A person stopped the answer: keep what was written, marked as stopped by them; returns that text."""
        seen = self._live.seen if self._live is not None else ""
        shown = stopped_text(seen[: PART_CHARS - 100], by)  # what one message holds, with room for the note
        await self._end_stream()
        await self._guarded.update_message(self._opened(), shown)
        return shown

    async def _finish_stream(self, first_part: str, *, feedback: bool) -> bool:
        """End a live stream with the answer's first part; False when the message must be updated with it instead."""
        stream = self._stream
        if stream is None or stream.closed:
            await self._end_stream()
            return False
        self._stream = None
        await stream.settle()
        updates = stream.closing_updates()
        ts, task_id = self._opened(), self._task.task_id
        try:
            if first_part.startswith(stream.text):  # what Slack shows is the start of the answer: send the rest
                rest = first_part[len(stream.text) :]
                await self._guarded.stop_stream(ts, task_id, text=rest, updates=updates, feedback=feedback)
                return True
            # It shows more (text written before a tool call) or other text (a call retried): end it, then replace it.
            await self._guarded.stop_stream(ts, task_id, updates=updates)
        except SlackError as exc:  # ended already (StreamClosed), or refused: the message is updated instead
            if not isinstance(exc, StreamClosed):
                log.info("task %s: could not end its stream: %s", task_id, exc)
        return False

    async def _end_stream(self) -> None:
        """End the live stream, if any, before the message is updated (Slack refuses updates while it streams)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        await stream.settle()
        try:
            await self._guarded.stop_stream(self._opened(), self._task.task_id, updates=stream.closing_updates())
        except SlackError as exc:  # ended already (StreamClosed), or refused: the update that follows says more
            if not isinstance(exc, StreamClosed):
                log.info("task %s: could not end its stream: %s", self._task.task_id, exc)

    async def tell_waiting_for_redis(self) -> None:
        """Tell the thread why its answer is late: the bot's storage is unreachable (the answer follows later)."""
        # Not checked: the lease is in Redis, which cannot be reached; the note is best effort.
        reply_ts = self._ts or self._task.reply_ts
        if reply_ts:
            try:
                await self._slack.update_message(self._task.thread, reply_ts, WAITING_FOR_REDIS)
            except SlackError as exc:
                log.info("task %s: could not say it is waiting for Redis: %s", self._task.task_id, exc)

    async def _record(self, reply_ts: str, *, streamed: bool = False) -> None:
        """Record the task's message; if a reset cancelled the task meanwhile, remove the message instead."""
        try:
            await self._journal.set_reply_ts(self._lease, self._task, reply_ts, streamed=streamed)
        except LeaseLost:
            # The reset could not know this message, and nobody will finish it: remove it (the lease is lost already).
            if await self._journal.cancelled(self._task):
                await self._slack.delete_message(self._task.thread, reply_ts)
            raise

    def _opened(self) -> str:
        if self._ts is None:
            raise RuntimeError("the reply message is used before open()")
        return self._ts


def _all_done() -> list[TaskUpdate]:
    """The first step marked done: a stream ended with a step in progress shows it as failed."""
    return [TaskUpdate(READING.id, READING.title, "complete")]
