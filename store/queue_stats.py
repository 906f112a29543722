"""How much work waits in the task queue, read from the shards' consumer groups (for /metrics, at each scrape).

Each thread with work has one entry in its shard's stream. An entry the group has not delivered yet is a thread
that waits for a worker; one it has delivered and that is not acknowledged yet is held by a worker (the group's
pending list). Reading it costs two commands per shard: XINFO GROUPS, and an XRANGE of one entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from store import decode, keys
from store.connection import RedisClient

# Past this many waiting entries in a shard, the count is not read entry by entry (see _waiting_in_shard).
COUNT_CAP = 1000


@dataclass(frozen=True)
class QueueStats:
    """The queue across all shards."""

    waiting: int  # threads no worker has taken yet
    running: int  # threads a worker holds (pending in the group)
    oldest_wait_seconds: float  # age of the oldest waiting entry; 0 when none waits


async def queue_stats(redis: RedisClient, space: keys.KeySpace, *, now: float | None = None) -> QueueStats:
    """The queue as it is now, shard by shard (a shard whose group does not exist yet counts as empty)."""
    now = time.time() if now is None else now
    waiting = running = 0
    oldest: float | None = None
    for shard in range(space.shards):
        stream = space.queue(shard)
        group = await _worker_group(redis, stream)
        if group is None:
            continue
        running += int(group.get("pending") or 0)
        count, first_ms = await _waiting_in_shard(redis, stream, group)
        waiting += count
        if first_ms is not None:
            oldest = first_ms / 1000 if oldest is None else min(oldest, first_ms / 1000)
    return QueueStats(waiting, running, max(now - oldest, 0.0) if oldest is not None else 0.0)


async def _worker_group(redis: RedisClient, stream: str) -> dict[str, Any] | None:
    """The workers' group as XINFO GROUPS describes it, or None if the stream or the group is missing."""
    if not await redis.exists(stream):
        return None
    for group in await redis.xinfo_groups(stream):
        if decode.text(group.get("name")) == keys.WORKER_GROUP:
            return dict(group)
    return None


async def _waiting_in_shard(redis: RedisClient, stream: str, group: dict[str, Any]) -> tuple[int, int | None]:
    """How many entries after the group's last delivered one, and the first one's time (ms), if any.

    Redis 7 keeps the count as the group's `lag`, but cannot tell it (nil) once entries are deleted past the last
    delivered one, as a reset does; then the entries are counted, up to COUNT_CAP.
    """
    last = decode.text(group.get("last-delivered-id") or "0-0")
    entries = await redis.xrange(stream, min=f"({last}", max="+", count=COUNT_CAP) or []
    first_ms = int(decode.text(entries[0][0]).split("-")[0]) if entries else None
    lag = group.get("lag")
    return (int(lag) if isinstance(lag, int) else len(entries)), first_ms
