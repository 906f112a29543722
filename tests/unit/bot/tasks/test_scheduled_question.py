"""What a scheduled run tells the model: that it is a follow-up, which schedule and run, how it ends, and for one
that runs until its goal is met, to cancel it with a reason once it is."""

from __future__ import annotations

from bot.tasks.scheduled import scheduled_question
from store.models import ThreadRef
from store.schedules import Schedule

THREAD = ThreadRef("T1", "C1", "1700000000.000100")


def schedule(**more: object) -> Schedule:
    """A recurring schedule after its third run."""
    fields: dict[str, object] = {
        "schedule_id": "abc",
        "thread": THREAD,
        "kind": "every",
        "next_at": 1.0,
        "note": "is the deploy green?",
        "created_by": "U1",
        "created_at": 0.0,
        "ends_at": 2.0,
        "every": 600.0,
        "fired": 3,
    }
    return Schedule(**{**fields, **more})  # type: ignore[arg-type]


def test_a_run_until_the_goal_is_met_asks_to_cancel_with_a_reason_once_it_is() -> None:
    """Its id, its run, how it recurs, and the cancel call to make; the note last."""
    text = scheduled_question("is the deploy green?", "abc", schedule(until_goal=True))
    assert "schedule abc" in text and "run 3" in text and "every 10 minutes" in text
    assert "action=cancel, schedule_id=abc and a reason" in text
    assert text.endswith("Your note to yourself:) is the deploy green?")


def test_a_counted_cron_run_and_a_one_off() -> None:
    """run N of COUNT, by cron; a one-off (its schedule gone once fired) has no further runs and no cancel."""
    counted = scheduled_question("x", "abc", schedule(kind="cron", every=None, cron="0 9 * * *", count=5))
    assert "run 3 of 5" in counted and "by cron '0 9 * * *'" in counted and "cancel" not in counted
    once = scheduled_question("x", "abc", None)
    assert "no further runs" in once and "cancel" not in once and "posted in the thread" in once
