"""The clock durable timers run by: real time, or (testing only) real time plus an offset tests can move forward.

With BOT_TEST_CLOCK_FILE set, the file holds a number of seconds to add to real time. The integration tests and
the playground write it to fast-forward a running process's timers ("it is now 30 minutes later") without
waiting; every process of a test reads the same file, so they agree on the time. The file is read again only when
it changes (one stat per reading), and a missing, empty or unreadable file means no offset. Only the timers use
this clock: everything else (leases, task times, Slack) keeps real time.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Tells the time, in Unix seconds."""

    def now(self) -> float:
        """The time now."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> float:
        """time.time()."""
        return time.time()


class OffsetClock:
    """Real time plus the offset (seconds) written in a file; testing only (BOT_TEST_CLOCK_FILE)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int, int] | None = None  # the file's inode, mtime and size when last read
        self._offset = 0.0

    def now(self) -> float:
        """Real time plus the file's offset."""
        return time.time() + self.offset()

    def offset(self) -> float:
        """The file's offset, read again if the file changed."""
        try:
            stat = os.stat(self._path)
        except OSError:
            self._seen, self._offset = None, 0.0
            return 0.0
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._seen, self._offset = seen, self._read()
        return self._offset

    def _read(self) -> float:
        try:
            text = self._path.read_text().strip()
            offset = float(text) if text else 0.0
            if not math.isfinite(offset):
                raise ValueError("not a finite number")
            return offset
        except (OSError, ValueError) as exc:  # a half-written file: no offset until it is written whole
            log.warning("cannot read the test clock's offset from %s: %s", self._path, type(exc).__name__)
            self._seen = None
            return 0.0


def advance(path: Path, seconds: float) -> float:
    """Move a test clock's time forward by `seconds` (tests, playground); returns the new offset. Written whole, then
    renamed into place, so that a process never reads half a number."""
    offset = OffsetClock(path).offset() + seconds
    partial = path.with_suffix(".partial")
    partial.write_text(repr(offset))
    os.replace(partial, path)
    return offset


def clock_for(test_clock_file: str | None) -> Clock:
    """The clock a process runs its timers by: real time unless BOT_TEST_CLOCK_FILE names a file."""
    return OffsetClock(Path(test_clock_file)) if test_clock_file else SystemClock()
