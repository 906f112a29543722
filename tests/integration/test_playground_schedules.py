"""The playground's schedules against the real `python -m bot dev`: listed on the page, fired by fast-forwarding the
bot's timers, cancelled through `/agent schedules`."""

from __future__ import annotations

from typing import Any

from tests.integration.playground_process import Playground, eventually
from tests.integration.test_playground import FINISHED, ask, bot_replies, ephemerals


def schedules(playground: Playground) -> dict[str, Any]:
    """The page's schedules and the timers' clock."""
    found: dict[str, Any] = playground.state().get("schedules") or {}
    return found


def test_fast_forward_fires_a_recurring_follow_up_and_the_page_follows_it(playground: Playground) -> None:
    """A follow-up every 10 minutes is listed with its next run; nothing runs until the clock is moved on 10 minutes,
    then its run answers in the thread and the next run is 10 minutes later; `/agent schedules` cancels it."""
    ts = ask(playground, "@claude keep an eye on this thread")
    eventually(lambda: any(FINISHED in text for text in bot_replies(playground, ts)), 30, what="the first answer")
    status, made = playground.post(
        "playground/schedules", {"channel": "C0GENERAL", "thread_ts": ts, "every_minutes": 10}
    )
    assert status == 200, made
    [item] = schedules(playground)["items"]
    assert item["id"] == made["schedule"]["id"] and item["every"] == 600 and item["thread_ts"] == ts
    assert 590 < item["next_at"] - schedules(playground)["now"] <= 600

    status, _ = playground.post("playground/clock", {"seconds": 600})
    assert status == 200
    # The stand-in model echoes the question it was asked: the schedule's note.
    eventually(
        lambda: any("Look at this thread again" in text for text in bot_replies(playground, ts)[1:]),
        30,
        what="the scheduled run's answer",
    )
    assert len(bot_replies(playground, ts)) == 2, "one run, one answer"
    [moved] = eventually(lambda: [i for i in schedules(playground)["items"] if i["fired"] == 1], what="its next run")
    assert moved["next_at"] == item["next_at"] + 600 and schedules(playground)["offset"] == 600

    assert playground.post("playground/commands", {"channel": "C0GENERAL", "text": "/agent schedules"})[0] == 200
    listing = eventually(
        lambda: next((e for e in ephemerals(playground) if "agent_schedule_cancel" in str(e["blocks"])), None),
        what="the listing",
    )
    [cancel] = [b for block in listing["blocks"] if block["type"] == "actions" for b in block["elements"]]
    status, _ = playground.post(
        "playground/actions",
        {"ephemeral_id": listing["id"], "action_id": cancel["action_id"], "value": cancel["value"]},
    )
    assert status == 200
    eventually(lambda: schedules(playground)["items"] == [], what="the schedule gone from the page")


def test_bad_clock_and_schedule_requests_are_refused(playground: Playground) -> None:
    """The clock moves forward only, by at most 30 days; a follow-up needs a message to follow and a period the bot's
    limits allow (its sentence is shown)."""
    ts = ask(playground, "a thread without the bot")
    cases: list[tuple[str, object, str]] = [
        ("playground/clock", {"seconds": -60}, "seconds must be a number"),
        ("playground/clock", {"seconds": 31 * 86400}, "seconds must be a number"),
        ("playground/schedules", {"channel": "C0GENERAL", "thread_ts": "1.000001"}, "no message"),
        ("playground/schedules", {"channel": "C0GENERAL", "thread_ts": ts, "every_minutes": 1}, "at most every"),
    ]
    for path, body, error in cases:
        status, answer = playground.post(path, body)
        assert status == 400 and error in answer["error"], (path, body, answer)
    assert schedules(playground)["items"] == [] and schedules(playground)["offset"] == 0
