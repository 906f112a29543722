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

# KEYS[1] = the mark, ARGV[1] = the bot's mark for the claiming task, ARGV[2] = the TTL, ARGV[3] = "1" if a mark
# equal to ARGV[1] is the caller's own (the same task, resumed). 1 if the caller holds the claim, else 0.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if not current then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return 1
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[3] == '1' and current == ARGV[1] then
    return 1
end
return 0
"""
# KEYS[1] = the mark, ARGV[1] = the bot's mark to take back: deleted only if it is still that one, never a person's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _bot_mark(task_id: str) -> str:
    return json.dumps({"by": "bot", "task": task_id})


@dataclass(frozen=True)
class TitleMark:
    """Who titled a session: the bot (in task `task_id`), or a person (`user_id`, with the `title` they gave)."""

    by: Literal["bot", "person"]
    title: str = ""
    user_id: str = ""
    task_id: str = ""


class SessionTitles:
    """The title mark of each thread's session, kept as long as the thread's agent (AGENT_TTL)."""

    def __init__(self, redis: RedisClient, *, ttl: int = keys.AGENT_TTL) -> None:
        self._redis = redis
        self._ttl = ttl
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    async def claim_title(self, thread: ThreadRef, task_id: str = "") -> bool:
        """True exactly once per thread: the caller is the one to title its session now. False once the bot has
        titled it, or a person has. With `task_id`, the claiming task's claim is its own again when it is resumed
        (after a crash between the claim and the rename, renaming again sets the same title).

        Call it as each of the thread's tasks starts: a refused claim refreshes the mark's TTL, so the mark lives
        as long as the thread is used, and an expired one cannot hand out a second claim to a living thread.
        """
        # One atomic script: of two workers racing, one gets True.
        args: list[str | int] = [_bot_mark(task_id), self._ttl, "1" if task_id else "0"]
        return bool(await self._claim(keys=[keys.session_title(thread)], args=args))

    async def release_title(self, thread: ThreadRef, task_id: str = "") -> None:
        """Give back a claim whose rename failed for a passing reason (rate limited, Slack unreachable), so that the
        thread's next task tries again; a person's title recorded since is kept. Not after a refusal that would
        repeat (feature_disabled, not_authorized): every later task would try in vain."""
        await self._release(keys=[keys.session_title(thread)], args=[_bot_mark(task_id)])

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
            return TitleMark(by, str(data.get("title", "")), str(data.get("user", "")), str(data.get("task", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptRecord("malformed session title mark") from exc
