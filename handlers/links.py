"""Links to Slack threads, built and parsed in one place.

A message link looks like https://team.slack.com/archives/C123/p1700000000000100, the ts without its dot; a
reply's link adds `?thread_ts=1700000000.000050&cid=C123`, naming its thread.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from store.models import ThreadRef

_LINK = re.compile(r"/archives/(?P<channel>[A-Z0-9]+)/p(?P<seconds>\d{10})(?P<micros>\d{6})(?:\?(?P<query>[^\s>|]*))?")
_THREAD_TS = re.compile(r"(?:^|&)thread_ts=(?P<ts>\d+\.\d+)")


@dataclass(frozen=True)
class ThreadLink:
    """The thread a Slack message link points into."""

    channel_id: str
    thread_ts: str
    is_reply: bool = False  # the link is to a reply, so it is certainly in a thread


def parse_thread_link(text: str) -> ThreadLink | None:
    """The thread of a message link (a reply's link carries its thread's ts in `thread_ts`)."""
    match = _LINK.search(text.replace("&amp;", "&"))  # Slack escapes & in command text
    if match is None:
        return None
    thread = _THREAD_TS.search(match["query"] or "")
    if thread:
        return ThreadLink(match["channel"], thread["ts"], is_reply=True)
    return ThreadLink(match["channel"], f"{match['seconds']}.{match['micros']}")


def permalink(team_domain: str, ref: ThreadRef) -> str | None:
    """A link to the thread's first message (None for a DM's top level, which has no thread)."""
    if not ref.thread_ts or not team_domain:
        return None
    return f"https://{team_domain}.slack.com/archives/{ref.channel_id}/p{ref.thread_ts.replace('.', '')}"


def thread_label(team_domain: str, ref: ThreadRef) -> str:
    """The thread as a link, named by when it started."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(ref.thread_ts))) if ref.thread_ts else ""
    link = permalink(team_domain, ref)
    return f"<{link}|Thread of {started}>" if link else "Direct messages"
