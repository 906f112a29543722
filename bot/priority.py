"""Acknowledging Slack comes before working tasks.

Slack waits for the acknowledgement of every event and sends it again after 3 s; a task that starts a few
milliseconds later goes unnoticed. So while events are coming in, task work waits (for a bounded time, so that
steady traffic cannot starve the tasks), and a burst of mentions is acknowledged before the tasks it created
compete with it for the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

# Events of a burst do not arrive back to back: intake counts as busy until none has come for this long.
SETTLE_SECONDS = 0.02


class IntakeFirst:
    """Tracks incoming events; task work awaits `turn()` before each step."""

    def __init__(self, max_wait: float = 0.5, settle: float = SETTLE_SECONDS) -> None:
        self._max_wait = max_wait
        self._settle = settle
        self._in_flight = 0
        self._last_event = 0.0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextlib.contextmanager
    def taking_in(self) -> Iterator[None]:
        """Wrap the handling of one incoming event."""
        self._in_flight += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last_event = time.monotonic()
            if self._in_flight == 0:
                asyncio.get_running_loop().call_later(self._settle, self._settle_down)

    def _settle_down(self) -> None:
        if self._in_flight == 0 and time.monotonic() - self._last_event >= self._settle * 0.9:
            self._quiet.set()

    async def turn(self) -> None:
        """Return once intake has been quiet for a moment, or after max_wait at most."""
        if not self._quiet.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), self._max_wait)
