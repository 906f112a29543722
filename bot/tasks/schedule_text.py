"""Schedules as people read them, in Slack's mrkdwn: `@bot status` in a thread posts these lines, and `/agent status`
and `/agent schedules` (handlers/schedule_views.py) show the same, with links to the threads."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from store.schedule_models import Schedule

# At most this many schedules are shown in a status or a listing; the rest are counted ("and N more").
SHOWN_SCHEDULES = 10
NOTE_START_CHARS = 80


def slack_date(timestamp: float) -> str:
    """A time Slack shows in the reader's own zone ("Tomorrow at 3:00 PM"); the text after | is the fallback."""
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def period(seconds: float) -> str:
    """A recurring schedule's period in words: 600 -> "10 min", 5400 -> "1 h 30 min"."""
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


def note_start(note: str) -> str:
    """The start of a schedule's note on one line, shown as written (mrkdwn's control characters escaped)."""
    flat = " ".join(note.split())
    cut = flat if len(flat) <= NOTE_START_CHARS else flat[:NOTE_START_CHARS].rstrip() + "…"
    # Escaped so that a note cannot mention a channel (<!channel>) or make a link.
    return cut.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def how_often(schedule: Schedule) -> str:
    """Once, or every period with its end and how many runs it has had."""
    if schedule.kind == "once" or (schedule.every is None and schedule.cron is None):
        return "once"
    ends = []
    if schedule.count is not None:
        ends.append(f"{schedule.fired} of {schedule.count} runs done")
    elif schedule.fired:
        ends.append(f"{schedule.fired} run(s) so far")
    if schedule.until is not None:
        ends.append(f"until {slack_date(schedule.until)}")
    if schedule.until_goal:
        ends.append("until its goal is met")
    if schedule.cron is not None:  # a cron expression, read in its creator's zone
        often = f"on cron `{escaped_code(schedule.cron)}` ({schedule.tz})"
    else:
        often = f"every {period(schedule.every or 0)}"
    return often + (f" ({', '.join(ends)})" if ends else "")


def escaped_code(text: str) -> str:
    """Text for inline code: a backtick would end it."""
    return text.replace("`", "'")[:100]


def when_next(schedule: Schedule) -> str:
    """When it runs next, or that it is paused."""
    if schedule.paused:
        return f"*paused* after {schedule.failures} failed run(s) in a row"
    return f"next {slack_date(schedule.next_at)}"


def schedule_line(schedule: Schedule, thread: str = "") -> str:
    """One schedule on one line: next run (or paused), how often, its note's start, its thread if given, its id."""
    where = f" · {thread}" if thread else ""
    return (
        f"• {when_next(schedule)} · {how_often(schedule)} · “{note_start(schedule.note)}”{where} "
        f"· `{schedule.schedule_id}`"
    )


def schedules_text(
    schedules: Sequence[Schedule], thread_of: Callable[[Schedule], str] | None = None, *, max_chars: int = 3000
) -> str:
    """The schedules as lines, soonest first: at most SHOWN_SCHEDULES of them, whole lines within `max_chars` (a
    Block Kit section holds 3,000), and a count of the rest. `thread_of` names each one's thread (a channel's
    listing), or is None (one thread's)."""
    if not schedules:
        return "*Scheduled follow-ups:* none"
    lines = [f"*Scheduled follow-ups ({len(schedules)}):*"]
    room = max_chars - len(lines[0]) - 80  # room for the line that counts the rest
    for schedule in schedules[:SHOWN_SCHEDULES]:
        line = schedule_line(schedule, thread_of(schedule) if thread_of else "")
        room -= len(line) + 1
        if room < 0:
            break
        lines.append(line)
    if len(lines) - 1 < len(schedules):
        lines.append(f"…and {len(schedules) - len(lines) + 1} more (`/agent schedules` lists them)")
    return "\n".join(lines)
