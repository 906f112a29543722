"""Sliding-window rate limits and tell-once marks, for the gate (bot/tasks/gate.py) to decide at intake.

A limit's log is a sorted set of the Slack event ids it counted, scored by when (ms). Counting an event is one
single-key script: drop the entries older than the window, and add the event if fewer than `limit` remain. The
event id is the member, so Slack's redelivery of an event already counted is not counted again. A caller that
counted an event in one log and is then refused by another (or finds the event was recorded before) gives it back.
"""

from __future__ import annotations

from store.connection import RedisClient

COUNTED_BEFORE = -1  # take(): the event is in the log already (Slack delivered it again)

# KEYS: the log. ARGV: event id, now (ms), window (ms), limit.
# Returns 0 when the event counts now, -1 when it counted before, else the ms until a slot frees: when the entry
# whose leaving brings the count under the limit is a window old (a limit lowered at run time may leave more than it).
_TAKE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -1 end
local now, window, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  return math.max(1, tonumber(freeing[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""

# KEYS: the mark. ARGV: event id, lifetime (ms). 1 if this event may tell: nobody did yet (the mark is now this
# event's), or this event itself did (Slack delivered it again: its notice is deduplicated downstream); else 0.
_TELL_ONCE = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then return 1 end
return 0
"""


class RateLimiter:
    """Counts events against sliding-window limits, and marks what was said so that it is said once."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE)
        self._tell_once = redis.register_script(_TELL_ONCE)

    async def take(self, key: str, event_id: str, *, limit: int, window_ms: int, now_ms: int) -> int:
        """Count the event in the log `key`: 0 if it counts now, COUNTED_BEFORE if it did, else the ms to wait."""
        if limit <= 0 or window_ms <= 0:
            raise ValueError(f"a limit needs a positive count and window, not {limit} in {window_ms} ms")
        return int(await self._take(keys=[key], args=[event_id, now_ms, window_ms, limit]))

    async def give_back(self, key: str, event_id: str) -> None:
        """Uncount the event: it was refused by another limit, or it was recorded before."""
        await self._redis.zrem(key, event_id)

    async def tell_once(self, key: str, event_id: str, *, ttl_ms: int) -> bool:
        """Whether this event is the one to say what the mark `key` stands for (for the next `ttl_ms`)."""
        return bool(int(await self._tell_once(keys=[key], args=[event_id, max(1, ttl_ms)])))
