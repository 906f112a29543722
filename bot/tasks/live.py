"""Showing an answer while it is written: the task's one reply message is updated as the text streams in.

Slack allows about one chat.update a second per message before it rate limits, so updates are spaced by
`interval`, never overlap (a newer text replaces a pending one instead of queueing behind it), and run beside the
stream, so a slow or refused update never holds the answer up. The final text is posted by the answer once
`settle()` has made sure no preview can land after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.agent.progress import Progress
from bot.core.errors import SlackError
from store.errors import LeaseLost

log = logging.getLogger(__name__)

UPDATE_INTERVAL = 1.2
# A preview is one message: it shows the start of a very long answer, which is split only when it is final.
PREVIEW_CHARS = 11_000
WRITING = " ✍️"


class LiveReply:
    """The reply message of one answer, updated with the answer so far."""

    def __init__(self, write: Callable[[str], Awaitable[None]], interval: float = UPDATE_INTERVAL) -> None:
        self._write = write  # replaces the message's text: a guarded write (bot/tasks/reply.py)
        self._stopped = False
        self._interval = interval
        self._last = 0.0
        self._updating: asyncio.Task[None] | None = None
        self.updates = 0
        self.seen = ""  # the current model call's text so far: what a Stop keeps

    async def show(self, text: str) -> None:
        """Show `text` (the answer so far) unless an update is under way or the last was too recent."""
        self.seen = text
        if self._updating is not None and not self._updating.done():
            return
        if self._stopped or time.monotonic() - self._last < self._interval or not text.strip():
            return
        self._last = time.monotonic()
        preview = text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "") + WRITING
        self._updating = asyncio.create_task(self._update(preview))

    async def progress(self, event: Progress) -> None:
        """Steps of the work are not shown here (only a streamed answer shows them): a new call's text starts over."""
        if event.kind == "model_call":
            self.seen = ""

    async def retrying(self, error: str) -> None:
        """Say that Claude is busy and the answer is being retried (the person sees why it takes longer)."""
        if self._stopped:
            return
        if self._updating is not None and not self._updating.done():
            await self.settle()
        notice = ":hourglass_flowing_sand: Claude is busy right now (overloaded or rate limited); retrying…"
        if error in ("APIConnectionError", "APITimeoutError"):
            notice = ":hourglass_flowing_sand: I cannot reach Claude right now; retrying…"
        self._last = time.monotonic()
        self._updating = asyncio.create_task(self._update(notice))

    async def _update(self, preview: str) -> None:
        try:
            # A worker that stalled past its lease (or whose thread was reset) must not write over the message
            # its successor finished: the write checks the lease first, like every other write, or raises LeaseLost.
            await self._write(preview)
            self.updates += 1
        except LeaseLost:
            self._stopped = True
        except SlackError as exc:  # a preview is a courtesy: the final text is what must arrive
            log.info("could not show an answer in progress: %s", exc)

    async def settle(self) -> None:
        """Wait for the update under way, if any, so that it cannot land after the final text."""
        if self._updating is not None:
            await asyncio.gather(self._updating, return_exceptions=True)
