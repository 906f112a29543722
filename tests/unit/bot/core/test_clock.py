"""The timers' clock: real time, or real time plus a test offset read from a file that may change under it."""

from __future__ import annotations

import time
from pathlib import Path

from bot.core.clock import OffsetClock, SystemClock, advance, clock_for


def test_without_a_file_the_clock_is_real_time() -> None:
    """No BOT_TEST_CLOCK_FILE: the system clock."""
    clock = clock_for(None)
    assert isinstance(clock, SystemClock)
    assert abs(clock.now() - time.time()) < 1


def test_advance_moves_every_reader_of_the_file_forward(tmp_path: Path) -> None:
    """A clock already reading the file sees each advance: offsets add up, and a missing file means none."""
    path = tmp_path / "clock"
    clock = OffsetClock(path)
    assert clock.offset() == 0
    assert advance(path, 1800) == 1800
    assert clock.offset() == 1800
    advance(path, 60)
    assert clock.offset() == 1860
    assert clock.now() - time.time() > 1859
    path.unlink()
    assert clock.offset() == 0


def test_an_unreadable_offset_counts_as_none(tmp_path: Path) -> None:
    """A file that does not hold a number (half written, or wrong) gives no offset, until it holds one."""
    path = tmp_path / "clock"
    path.write_text("soon")
    clock = OffsetClock(path)
    assert clock.offset() == 0
    path.write_text("42")
    assert clock.offset() == 42
