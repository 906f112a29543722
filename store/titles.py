"""Who titled a thread's agent session: the bot titles it once, from the first question; a person's title stays.

Slack shows every agent session (a DM thread, a thread in a channel) with a title, which any member can change; the
app then receives agent_session_title_changed. The bot sets the title once, when the thread's first question
starts, and never again: not over a title a person chose, and not on later questions either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from store import decode, keys
from store.connection import RedisClient
from store.errors import CorruptRecord
from store.models import ThreadRef

# What Slack keeps of a session title (agents.sessions.rename takes 1 to 200 characters).
MAX_TITLE_CHARS = 200
_BY_BOT = json.dumps({"by": "bot"})


@dataclass(frozen=True)
class TitleMark:
    """Who titled a session, and the title a person gave it ("" when the bot titled it)."""

    by: Literal["bot", "person"]
    title: str = ""
    user_id: str = ""


class SessionTitles:
    """The title mark of each thread's session, kept as long as the thread's agent (AGENT_TTL)."""

    def __init__(self, redis: RedisClient, *, ttl: int = keys.AGENT_TTL) -> None:
        self._redis = redis
        self._ttl = ttl

    async def claim_title(self, thread: ThreadRef) -> bool:
        """True exactly once per thread: the caller is the one to title its session now. False once the bot has
        titled it, or a person has.

        Call it as each of the thread's tasks starts: a refused claim refreshes the mark's TTL, so the mark lives
        as long as the thread is used, and an expired one cannot hand out a second claim to a living thread.
        """
        key = keys.session_title(thread)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(key, _BY_BOT, nx=True, ex=self._ttl)  # atomic: of two workers racing, one gets True
        pipe.expire(key, self._ttl)
        claimed, _ = await pipe.execute()
        return bool(claimed)

    async def person_titled(self, thread: ThreadRef, title: str, user_id: str = "") -> None:
        """Record that a person titled the session (agent_session_title_changed): the bot never retitles it."""
        mark = {"by": "person", "title": title[:MAX_TITLE_CHARS], "user": user_id}
        await self._redis.set(keys.session_title(thread), json.dumps(mark), ex=self._ttl)

    async def mark(self, thread: ThreadRef) -> TitleMark | None:
        """Who titled the session, or None if nobody has (or the mark expired)."""
        raw = await self._redis.get(keys.session_title(thread))
        if raw is None:
            return None
        try:
            data = json.loads(decode.text(raw))
            by = data["by"]
            if by not in ("bot", "person"):
                raise ValueError(by)
            return TitleMark(by, str(data.get("title", "")), str(data.get("user", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecord("malformed session title mark") from exc
