"""How much work waits in the task queue, read from the shards' consumer groups (for /metrics).

Each thread with work has one entry in its shard's stream. An entry the group has not delivered yet is a thread
that waits for a worker; one it has delivered and that is not acknowledged yet is held by a worker (the group's
pending list). Reading it costs two pipelined round trips for all shards: XINFO GROUPS of each, then an XRANGE of
each shard's first waiting entry (of up to COUNT_CAP entries where Redis cannot give the count itself).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from store import decode, keys
from store.connection import RedisClient

# Past this many waiting entries in a shard, the count is not read entry by entry (see _waiting).
COUNT_CAP = 1000


@dataclass(frozen=True)
class QueueStats:
    """The queue across all shards."""

    waiting: int  # threads no worker has taken yet
    running: int  # threads a worker holds (pending in the group)
    oldest_wait_seconds: float  # age of the oldest waiting entry; 0 when none waits


async def queue_stats(redis: RedisClient, space: keys.KeySpace, *, now: float | None = None) -> QueueStats:
    """The queue as it is now (a shard whose stream or group does not exist yet counts as empty)."""
    now = time.time() if now is None else now
    streams = [space.queue(shard) for shard in range(space.shards)]
    groups = await _worker_groups(redis, streams)
    reads = redis.pipeline(transaction=False)
    for stream, group in groups:
        # Redis 7 keeps the count as the group's `lag`, but cannot tell it (nil) once entries are deleted past the
        # last delivered one, as a reset does; then the entries are counted, up to COUNT_CAP.
        count = 1 if isinstance(group.get("lag"), int) else COUNT_CAP
        reads.xrange(stream, min=f"({decode.text(group.get('last-delivered-id') or '0-0')}", max="+", count=count)
    waiting = running = 0
    oldest: float | None = None
    for (_stream, group), entries in zip(groups, await reads.execute() if groups else [], strict=True):
        running += int(group.get("pending") or 0)
        lag = group.get("lag")
        waiting += int(lag) if isinstance(lag, int) else len(entries or [])
        if entries:
            first = int(decode.text(entries[0][0]).split("-")[0]) / 1000
            oldest = first if oldest is None else min(oldest, first)
    return QueueStats(waiting, running, max(now - oldest, 0.0) if oldest is not None else 0.0)


async def _worker_groups(redis: RedisClient, streams: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Each stream with the workers' group as XINFO GROUPS describes it; streams without one are left out."""
    infos = redis.pipeline(transaction=False)
    for stream in streams:
        infos.xinfo_groups(stream)
    found: list[tuple[str, dict[str, Any]]] = []
    for stream, groups in zip(streams, await infos.execute(raise_on_error=False), strict=True):
        if isinstance(groups, ResponseError):  # no such stream yet
            continue
        if isinstance(groups, Exception):
            raise groups
        for group in groups:
            if decode.text(group.get("name")) == keys.WORKER_GROUP:
                found.append((stream, dict(group)))
    return found
