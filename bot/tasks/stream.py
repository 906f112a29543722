"""Showing an answer while it is written, natively: streamed into its message with Slack's streaming methods,
with the steps of the work (reading the thread, each tool) as task updates beside the text.

Appends run beside the model's stream, one at a time: what arrives meanwhile goes with the next. The first goes as
soon as there is something to show (that is what people wait for), the next at most every APPEND_INTERVAL:
chat.appendStream is rate limited per workspace (about 100 a minute; not shared out between answers here: past
that, the Slack client waits as Slack's 429 asks and the next append carries more). At
most PART_CHARS of text is streamed: that is what one message holds; the rest of a longer answer goes out in
further messages when it is final (bot/tasks/reply.py). A slow or refused append never holds the answer up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.agent.progress import Progress
from bot.core.errors import SlackError, StreamClosed
from bot.core.ports import TaskUpdate
from bot.tasks.split import PART_CHARS
from store.errors import LeaseLost

log = logging.getLogger(__name__)

APPEND_INTERVAL = 1.0
# Appends refused in a row (other than by the stream's end) before the stream is left alone until the final text.
MAX_APPEND_FAILURES = 3
READING = TaskUpdate("reading", "Reading the conversation", "in_progress")

Append = Callable[[str, Sequence[TaskUpdate]], Awaitable[None]]


class StreamedReply:
    """The streamed message of one answer: text and step updates appended as they come."""

    def __init__(self, append: Append, interval: float = APPEND_INTERVAL) -> None:
        self._append = append  # a guarded append (bot/tasks/reply.py): it checks the lease first
        self._interval = interval
        self.text = ""  # the answer's text as Slack shows it, in order
        self.closed = False  # Slack takes no more (it ended the stream, or a person pressed Stop)
        self._call_text = ""  # the current model call's text so far
        self._call_sent = 0  # how much of it is in self.text
        self._separator = ""  # goes before the next model call's first text
        self._diverged = False  # a retried call restarted its text: what Slack shows is not the answer any more
        self._open: dict[str, TaskUpdate] = {READING.id: READING}  # steps shown in progress
        self._pending: list[TaskUpdate] = []
        self._sending: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._settling = False
        self._failures = 0
        self._last = 0.0  # when the last append went: the first goes at once
        self.appends = 0

    @property
    def seen(self) -> str:
        """Everything of the answer written so far (streamed or not yet): what a Stop keeps."""
        return self.text + self._separator + self._call_text[self._call_sent :] if not self._diverged else self.text

    async def show(self, text: str) -> None:
        """The current model call's text so far."""
        if not text.startswith(self._call_text[: self._call_sent]):
            self._diverged = True  # the final text replaces what Slack shows (reply.py)
        self._call_text = text
        self._kick()

    async def progress(self, event: Progress) -> None:
        """A step of the work began or ended, or a new model call began."""
        if event.kind == "model_call":
            self._finish_step(READING.id, error=False)
            if self._call_sent:
                self._separator = "\n\n"
            self._call_text, self._call_sent = "", 0
        elif event.kind == "tool_started":
            update = TaskUpdate(event.tool_id, event.title or event.name, "in_progress")
            self._open[update.id] = update
            self._pending.append(update)
        elif event.kind == "tool_finished":
            self._finish_step(event.tool_id, error=event.error)
        self._kick()

    async def retrying(self, error: str) -> None:
        """A model call failed and is tried again: its text starts over (it is not shown twice)."""

    def closing_updates(self) -> list[TaskUpdate]:
        """The updates not sent yet, and every step still in progress marked done: a step left in progress when the
        stream ends shows as failed."""
        for step_id in list(self._open):
            self._finish_step(step_id, error=False)
        pending, self._pending = self._pending, []
        return pending

    async def settle(self) -> None:
        """Wait for the append under way, if any, and send no more: the final text is sent with the stream's end."""
        self._settling = True
        self._wake.set()
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)

    def _finish_step(self, step_id: str, *, error: bool) -> None:
        update = self._open.pop(step_id, None)
        if update is not None:
            self._pending.append(TaskUpdate(update.id, update.title, "error" if error else "complete"))

    def _unsent(self) -> str:
        if self._diverged:
            return ""
        text = self._call_text[self._call_sent :]
        if not text:
            return ""
        room = PART_CHARS - len(self.text) - len(self._separator)
        return (self._separator + text[: max(room, 0)]) if room > 0 else ""

    def _kick(self) -> None:
        if self.closed or self._settling:
            return
        self._wake.set()
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while not self.closed and not self._settling:
            text, updates = self._unsent(), self._pending
            if not text and not updates:
                return
            wait = self._interval - (time.monotonic() - self._last)
            if wait > 0 and not updates and self.text:  # text waits its turn; the first text and updates go at once
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            self._pending = []
            self._last = time.monotonic()
            try:
                await self._append(text, updates)
            except (StreamClosed, LeaseLost):
                self.closed = True
                return
            except SlackError as exc:  # a courtesy: the final text is what must arrive
                self._pending = updates + self._pending
                self._failures += 1
                log.info("could not append to a streamed answer: %s", exc)
                if self._failures >= MAX_APPEND_FAILURES:
                    self.closed = True
                return  # tried again with what comes next
            self._failures = 0
            self.appends += 1
            self.text += text
            if text:
                self._call_sent += len(text) - len(self._separator)
                self._separator = ""
