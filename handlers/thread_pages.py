"""Reading a long thread by the pages a question needs, never the whole thread.

conversations.replies is a Tier 3 method (about 50 calls a minute per workspace, shared by every thread) and
returns a time range oldest first, at most a page a call, with the thread's parent on top of every page. The
newest messages of a 10,000-reply thread are therefore 50 pages from its start. Message ts values are times, so
the newest messages are found instead by windows [oldest, latest] that end where the reading ends: each window's
width comes from how densely the thread's messages are spread (the parent's reply_count and latest_reply, then
what each window held), and a window that holds what is wanted within one page ends the search. A thread of
one page costs one call; a long one a few; MAX_CALLS bounds every read.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Raw = dict[str, Any]
# Messages asked for a call: Slack takes up to 1,000 and recommends at most 200. The parent counts among them.
PAGE = 200
# Calls one read may make; a read that runs out returns the newest messages it has and says older ones exist.
MAX_CALLS = 8
# A window is sized for this many times the messages still wanted, so that a sparser stretch of the thread than
# estimated still yields them in one call, but for at most this share of a page, so that a denser one does not
# overflow it.
HEADROOM = 1.5
MOST_OF_A_PAGE = 0.8


@dataclass(frozen=True)
class Page:
    """One conversations.replies answer: the parent (when on the page), the replies on it, and what follows."""

    parent: Raw | None
    replies: list[Raw]
    has_more: bool
    next_cursor: str


@dataclass(frozen=True)
class Tail:
    """The newest messages of a range of a thread, oldest first, and where older ones begin (None: none left)."""

    messages: list[Raw]
    older_than: str | None  # older messages were not read: page back from here (before this ts)


# Fetches one page: conversations.replies of the thread with these arguments (oldest, latest, inclusive, limit,
# cursor), parent and replies apart.
FetchPage = Callable[..., Awaitable[Page]]


def micros(ts: str) -> int:
    """A Slack ts ("1700000000.000100") in whole microseconds, so window arithmetic is exact."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


def as_ts(value: int) -> str:
    """Microseconds as a Slack ts."""
    return f"{value // 1_000_000}.{value % 1_000_000:06d}"


def _width(wanted: int, density: float) -> int:
    """The window (in microseconds) expected to hold `wanted` messages at `density` messages a microsecond."""
    return max(1, int(min(wanted * HEADROOM, PAGE * MOST_OF_A_PAGE) / density)) if density > 0 else 0


def _density(parent: Raw | None, head: list[Raw], thread_ts: str) -> float:
    """Messages a microsecond over the whole thread (from the parent's summary fields), else over the first page."""
    start = micros(thread_ts)
    if parent and parent.get("reply_count") and parent.get("latest_reply"):
        return int(parent["reply_count"]) / max(1, micros(str(parent["latest_reply"])) - start)
    return len(head) / max(1, micros(str(head[-1]["ts"])) - start)


def _ts_of(message: Raw) -> int:
    return micros(str(message["ts"]))


async def newest(fetch: FetchPage, thread_ts: str, *, wanted: int, before: str | None) -> Tail:
    """The thread's newest `wanted` messages (its parent counts as its first) posted before `before`, or at all."""
    if before is not None and micros(before) <= micros(thread_ts):
        return Tail([], None)
    first = await fetch(latest=before, inclusive=False, limit=PAGE)
    whole = [first.parent, *first.replies] if first.parent else first.replies
    if not first.has_more or not first.replies:  # the range fits one page: this one call read it all
        return Tail(whole[-wanted:], str(whole[-wanted]["ts"]) if len(whole) > wanted else None)
    if before is not None:
        top = micros(before) - 1
    else:
        latest_reply = str((first.parent or {}).get("latest_reply") or "")
        top = micros(latest_reply) if latest_reply else int(time.time() * 1_000_000)
    search = _Search(fetch, wanted, top, whole, _density(first.parent, first.replies, thread_ts))
    await search.run(MAX_CALLS - 1)
    return search.result()


class _Search:
    """The newest messages below `top`, found by windows [start, high) where `high` only moves down.

    Known exactly: `found`, every message from `high` to `top`, and `base`, a run of messages right below some
    point (at first the thread's first page). Between them is a gap, and each window shrinks it: from above when
    it holds less than a page (its messages join `found`), from below when it holds more (its page, the earliest
    messages of the window, becomes `base`). A window starts where the density seen so far says the messages
    still wanted begin; when that shrank the gap by less than half, the next window starts mid-gap instead, so a
    thread however unevenly spread costs at most a few calls per halving of the gap.
    """

    def __init__(self, fetch: FetchPage, wanted: int, top: int, base: list[Raw], density: float) -> None:
        self._fetch = fetch
        self._wanted = wanted
        self._found: dict[str, Raw] = {}
        self._high = top + 1  # `found` holds every message in [high, top]
        self._base = base  # every message from the base's first to its last
        self._base_is_start = True  # the base begins at the thread's parent: nothing is older
        self._density = density
        self._halve = False

    async def run(self, calls: int) -> None:
        """Shrink the gap until enough is found, or it is closed, or `calls` calls are made."""
        for _ in range(calls):
            floor = _ts_of(self._base[-1])
            gap = self._high - 1 - floor
            if gap <= 0 or len(self._found) >= self._wanted:
                break
            guess = self._high - _width(self._wanted - len(self._found), self._density)
            start = floor + 1 + gap // 2 if self._halve or guess >= self._high else guess
            start = min(self._high - 1, max(floor + 1, start))
            page = await self._fetch(oldest=as_ts(start), latest=as_ts(self._high - 1), inclusive=True, limit=PAGE)
            if page.has_more and page.replies:  # more than a page: its newest part is wanted
                self._base, self._base_is_start = page.replies, False
                self._density = len(page.replies) / max(1, _ts_of(page.replies[-1]) - start + 1)
                self._halve = _ts_of(page.replies[-1]) - floor < gap / 2
                continue
            self._found.update((str(m["ts"]), m) for m in page.replies)
            if page.replies:
                self._density = len(page.replies) / max(1, self._high - start)
            self._halve = self._high - start < gap / 2
            self._high = start

    def result(self) -> Tail:
        """The newest messages found, and where reading stopped."""
        closed = self._high - 1 - _ts_of(self._base[-1]) <= 0
        known = {**self._found, **({str(m["ts"]): m for m in self._base} if closed else {})}
        messages = sorted(known.values(), key=_ts_of)[-self._wanted :]
        if len(known) > self._wanted:
            return Tail(messages, str(messages[0]["ts"]))
        if closed and self._base_is_start:
            return Tail(messages, None)
        # Reading stopped at a gap: older messages begin below `high` (or below the base, once merged).
        return Tail(messages, str(messages[0]["ts"]) if closed else as_ts(self._high))


async def after(fetch: FetchPage, *, oldest: str, match: Callable[[Raw], bool], max_pages: int) -> Raw | None:
    """The first message posted after `oldest` that `match` accepts, reading at most `max_pages` pages."""
    cursor: str | None = None
    for _ in range(max_pages):
        page = await fetch(oldest=oldest, limit=PAGE, cursor=cursor)
        found = next((m for m in page.replies if match(m)), None)
        if found is not None or not page.next_cursor:
            return found
        cursor = page.next_cursor
    return None
