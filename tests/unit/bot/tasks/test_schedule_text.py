"""Schedules as people read them: periods in words, Slack's date formatting, notes that cannot ping or link, and a
listing that stays within a section's 3,000 characters."""

from __future__ import annotations

import pytest

from bot.tasks.schedule_text import how_often, note_start, period, schedules_text, slack_date
from store.models import ThreadRef
from store.schedule_models import Schedule

THREAD = ThreadRef("T1", "C1", "1700000000.000100")


def made(schedule_id: str = "abc", note: str = "look again", **more: object) -> Schedule:
    """A stored schedule, due at 1,800,000,000."""
    values: dict[str, object] = {
        "schedule_id": schedule_id,
        "thread": THREAD,
        "kind": "once",
        "next_at": 1_800_000_000.0,
        "note": note,
        "created_by": "U1",
        "created_at": 1_799_990_000.0,
        "ends_at": 1_800_000_000.0,
        **more,
    }
    return Schedule(**values)  # type: ignore[arg-type]  # the test's keyword values are the dataclass's


@pytest.mark.parametrize(
    ("seconds", "words"), [(300, "5 min"), (3600, "1 h"), (5400, "1 h 30 min"), (90061, "1 d 1 h 1 min 1 s")]
)
def test_a_period_in_words(seconds: float, words: str) -> None:
    """Days, hours, minutes and seconds, the zero ones left out."""
    assert period(seconds) == words


def test_a_time_in_slacks_date_formatting_with_a_utc_fallback() -> None:
    """Slack shows it in the reader's zone; the fallback is UTC."""
    assert slack_date(1_800_000_000.4) == "<!date^1800000000^{date_short_pretty} at {time}|2027-01-15 08:00 UTC>"


def test_a_recurring_schedule_says_its_period_its_runs_and_its_ends() -> None:
    """Every period, how many of its runs are done, and each end it has."""
    recurring = made(kind="every", every=600.0, count=6, fired=2, until_goal=True)
    assert how_often(recurring) == "every 10 min (2 of 6 runs done, until its goal is met)"
    assert how_often(made()) == "once"


def test_a_note_is_one_line_cut_and_cannot_ping_or_link() -> None:
    """Whitespace folded, cut at 80 characters, and < > & escaped so that <!channel> stays text."""
    assert note_start("ping\n<!channel> & <https://x|y>") == "ping &lt;!channel&gt; &amp; &lt;https://x|y&gt;"
    assert note_start("x" * 200) == "x" * 80 + "…"


def test_a_long_listing_keeps_whole_lines_within_its_characters() -> None:
    """Ten schedules of long notes do not fit 1,000 characters: whole lines are kept, the rest counted."""
    schedules = [made(f"id{n}", "&" * 80) for n in range(10)]
    text = schedules_text(schedules, max_chars=1000)
    assert len(text) <= 1000 and text.endswith("more (`/agent schedules` lists them)")
    shown = sum(line.startswith("• ") for line in text.splitlines())
    assert 0 < shown < 10 and f"…and {10 - shown} more" in text


def test_a_cron_schedule_says_its_expression_and_zone() -> None:
    """A cron schedule has no period: it shows its expression (a backtick cannot end the code) and its zone."""
    cron = made(kind="cron", cron="0 9 * * 1-5", tz="America/New_York", fired=1)
    assert how_often(cron) == "on cron `0 9 * * 1-5` (America/New_York) (1 run(s) so far)"
