"""Block Kit and text of people's view of schedules: the lines of `/agent status`, and `/agent schedules` with a
Cancel button on each (and Resume on a paused one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.tasks.schedule_text import SHOWN_SCHEDULES, note_start, schedule_line, schedules_text
from handlers.links import thread_label
from store.schedule_models import Schedule

Block = dict[str, Any]
CANCEL_SCHEDULE = "agent_schedule_cancel"
RESUME_SCHEDULE = "agent_schedule_resume"
# A listing takes two blocks a schedule (its line, its buttons): SHOWN_SCHEDULES keeps it well within the 50 blocks
# of a message.


def schedules_status_block(schedules: Sequence[Schedule], team_domain: str, *, with_thread: bool) -> Block:
    """The schedules as one section of `/agent status` (within the 3,000 characters of a section: ten lines of at
    most about 250)."""
    thread_of = (lambda schedule: thread_label(team_domain, schedule.thread)) if with_thread else None
    return _section(schedules_text(schedules, thread_of))


def button_value(schedule: Schedule) -> str:
    """What a schedule's buttons carry: its channel, thread and id (the channel is checked against the click's)."""
    ref = schedule.thread
    return f"{ref.channel_id}:{ref.thread_ts}:{schedule.schedule_id}"


def parse_button_value(value: str) -> tuple[str, str, str] | None:
    """The channel, thread ts and schedule id a button carries, or None for a value that is not one."""
    parts = value.split(":")
    if len(parts) != 3 or not all(parts):
        return None
    channel_id, thread_ts, schedule_id = parts
    return channel_id, thread_ts, schedule_id


def schedules_listing(channel_id: str, schedules: Sequence[Schedule], team_domain: str, note: str = "") -> list[Block]:
    """`/agent schedules`: each schedule with a Cancel button (and Resume when paused), soonest first, at most
    SHOWN_SCHEDULES of them; the rest are counted and can be cancelled by id."""
    head = f"*Scheduled follow-ups in <#{channel_id}>:* {len(schedules) or 'none'}"
    blocks: list[Block] = [_section(f"{note}\n{head}" if note else head)]
    for schedule in schedules[:SHOWN_SCHEDULES]:
        blocks.append(_section(schedule_line(schedule, thread_label(team_domain, schedule.thread))))
        buttons = [_cancel_button(schedule)]
        if schedule.paused:
            buttons.insert(0, _button(RESUME_SCHEDULE, "Resume", button_value(schedule)))
        blocks.append({"type": "actions", "elements": buttons})
    if len(schedules) > SHOWN_SCHEDULES:
        blocks.append(_context(f"…and {len(schedules) - SHOWN_SCHEDULES} more, later ones"))
    blocks.append(
        _context(
            "`/agent schedules cancel <id>` cancels one by its id. Admins, the thread's people and the schedule's "
            "creator may cancel it; `/agent reset <thread link>` cancels all of a thread's."
        )
    )
    return blocks


def _cancel_button(schedule: Schedule) -> Block:
    button = _button(CANCEL_SCHEDULE, "Cancel", button_value(schedule))
    button["style"] = "danger"
    button["confirm"] = {
        "title": {"type": "plain_text", "text": "Cancel this follow-up?"},
        "text": {"type": "mrkdwn", "text": f"It will not run again: “{note_start(schedule.note)}”"[:300]},
        "confirm": {"type": "plain_text", "text": "Cancel it"},
        "deny": {"type": "plain_text", "text": "Keep it"},
    }
    return button


def _button(action_id: str, label: str, value: str) -> Block:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": label}, "value": value}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
