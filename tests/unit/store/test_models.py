"""Stored records that do not parse: a clear error that never repeats what people wrote."""

from __future__ import annotations

import pytest

from store.errors import CorruptRecord
from store.models import ThreadRef, Turn


def test_a_malformed_turn_is_refused_without_echoing_its_text() -> None:
    """The error of a turn that does not parse names its size, not its words (errors reach the log)."""
    raw = '{"role": "moderator", "text": "the launch code is 0000"}'
    with pytest.raises(CorruptRecord) as caught:
        Turn.from_json(raw)
    assert "launch code" not in str(caught.value)
    assert str(len(raw)) in str(caught.value)


def test_a_huge_bad_thread_reference_is_quoted_only_in_part() -> None:
    """A queue entry's garbage is quoted in the error at most 80 characters long."""
    with pytest.raises(CorruptRecord) as caught:
        ThreadRef.decode("x" * 10_000)
    assert len(str(caught.value)) < 200
