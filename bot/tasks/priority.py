"""Acknowledging Slack comes before working tasks.

Slack waits for the acknowledgement of every event and sends it again after 3 s; a task that starts a few
milliseconds later goes unnoticed. So while events are coming in, task work waits, and a burst of mentions is
acknowledged before the tasks it created compete with it for the CPU. Under steady traffic intake never settles:
after a bounded wait (so that the tasks are not starved) they start one at a time, so that acknowledgements
never queue behind a crowd of answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

# Events of a burst do not arrive back to back: intake counts as busy until none has come for this long.
SETTLE_SECONDS = 0.05
# While intake stays busy past max_wait, tasks start one at a time, this far apart (50 a second at most).
PACE_SECONDS = 0.02


class IntakeFirst:
    """Tracks incoming events; the runner awaits `turn()` before it starts each task."""

    def __init__(self, max_wait: float = 0.5, settle: float = SETTLE_SECONDS, pace: float = PACE_SECONDS) -> None:
        self._max_wait = max_wait
        self._settle = settle
        self._pace = pace
        self._one_at_a_time = asyncio.Lock()
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
        """Return once intake has been quiet for a moment, or after max_wait at most.

        Under steady traffic intake never settles. Released all at once after max_wait, the waiting tasks would
        take the CPU together and the next acknowledgements would wait for all of them; so they are released one
        every `pace` seconds instead, as long as intake stays busy.
        """
        if self._quiet.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), self._max_wait)
        if not self._quiet.is_set():
            async with self._one_at_a_time:
                # Should intake settle meanwhile, the queue of waiting tasks empties at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._quiet.wait(), self._pace)
