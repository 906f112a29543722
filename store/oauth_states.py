"""OAuth states: the random value the install page hands out and the redirect must bring back, once, in time.

The state ties Slack's redirect to an install that this app started (CSRF protection). Each is one key with the
state's lifetime as TTL; consuming it is a GETDEL, so of two redirects racing with the same state one wins.
"""

from __future__ import annotations

import re
import secrets

from store import keys
from store.connection import RedisClient

# token_urlsafe(32) gives 43 characters of [A-Za-z0-9_-]; anything else was not issued here, and is refused
# before it can make a key of whatever length or content a caller sent.
_STATE_BYTES = 32
_ISSUED_STATE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class OAuthStates:
    """Single-use, expiring OAuth states."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def issue(self, expire_seconds: int) -> str:
        """A new random state, valid for `expire_seconds` or until consumed."""
        if expire_seconds <= 0:
            raise ValueError(f"a state must live a positive number of seconds, not {expire_seconds}")
        state = secrets.token_urlsafe(_STATE_BYTES)
        await self._redis.set(keys.oauth_state(state), "1", ex=expire_seconds)
        return state

    async def consume(self, state: str) -> bool:
        """True once for a state issued here that has not expired; False for a reused, expired or forged one."""
        if not _ISSUED_STATE.fullmatch(state):
            return False
        return await self._redis.getdel(keys.oauth_state(state)) is not None
