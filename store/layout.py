"""The layout record (agent:layout): its version and number of queue shards, and whether a Redis still holds data
of key layout v1.

The number of shards decides which slot every thread's keys live in, so a process started with another
QUEUE_SHARDS than the data was written with would not find them: it stops instead (check_layout), with one line.
The data moves to another number of shards only by hand, with every process stopped (store/reshard.py).

Releases of layout v1 never wrote agent:layout. A migration pass that finds nothing of v1 left (store/migrate.py)
records layout 2 there, and from then on needs_migration() trusts it: v1 data cannot reappear without a v1
process, and every v1 process makes the v1 queue (agent:queue) when it starts, and adds to it on every mention.
So the record must not say version 2 before a pass has found nothing left: call needs_migration() (and migrate)
before anything that records the layout of a new deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ResponseError

from store import decode, keys, keys_v1
from store.errors import CorruptRecord, UnusableRedis
from store.keys import KeySpace

MOVING_TO = "moving_to"  # the field saying a change of the shard count to that many runs (store/reshard.py)


@dataclass(frozen=True)
class Layout:
    """What agent:layout says: the layout's version, its number of queue shards (None: not recorded), and the number
    a change of it moves the data to while that change runs."""

    version: int | None
    shards: int | None
    moving_to: int | None = None


async def read_layout(redis: Redis | RedisCluster) -> Layout | None:
    """The layout record, or None if there is none (a new Redis, or one that only v1 ever used)."""
    fields = decode.fields(await redis.hgetall(keys.LAYOUT))
    if not fields:
        return None
    try:
        version, shards, moving_to = fields.get("version"), fields.get("shards"), fields.get(MOVING_TO)
        return Layout(
            int(version) if version else None, int(shards) if shards else None, int(moving_to) if moving_to else None
        )
    except ValueError as exc:
        raise CorruptRecord(f"malformed {keys.LAYOUT}: {str(fields)[:200]}") from exc


async def write_layout(redis: Redis | RedisCluster, space: KeySpace) -> None:
    """Record that the data is laid out in layout v2 with the key space's number of shards."""
    await redis.hset(keys.LAYOUT, mapping={"version": str(keys.LAYOUT_VERSION), "shards": str(space.shards)})


async def needs_migration(redis: Redis | RedisCluster) -> bool:
    """Whether Redis holds v1 data. Two reads when the layout says v2 and no old process made a v1 queue since;
    a SCAN (stopping at the first v1 key) only while no pass has recorded layout 2 yet."""
    if isinstance(redis, RedisCluster):
        return False  # v1 could not start on a cluster (its scripts cross slots), so it never wrote to one
    if await redis.exists(keys_v1.QUEUE):
        return True
    layout = await read_layout(redis)
    if layout is not None and layout.version == keys.LAYOUT_VERSION:
        return False
    async for raw in redis.scan_iter(match=keys_v1.MATCH, count=1000):
        if keys_v1.parse(decode.text(raw)) is not None:
            return True  # (idle v1 agents have no queue entry: without a record, they must be looked for)
    return False


async def live_v1_consumers(redis: Redis, *, idle_ms: int = 60_000) -> set[str]:
    """Consumers that used the v1 queue within idle_ms: old workers still running (pass them to migrate_v1).

    A running v1 worker reads the queue every second while it has room, and claims stale entries every couple of
    seconds in any case; each resets its idle time in the consumer group. A new process never reads that queue,
    so one that took over an old worker's name (the same DYNO) is not counted.
    """
    return await v1_consumers(redis, idle_ms)


async def v1_consumers(redis: Redis, idle_ms: int | None = None) -> set[str]:
    """The v1 queue's consumers (those active within idle_ms, if given)."""
    try:
        rows = await redis.xinfo_consumers(keys_v1.QUEUE, keys.WORKER_GROUP)
    except ResponseError:  # no v1 queue or group: no old worker reads it
        return set()
    return {decode.text(row["name"]) for row in rows if idle_ms is None or int(row["idle"]) < idle_ms}


async def check_layout(redis: Redis | RedisCluster, space: KeySpace, *, record_version: bool) -> None:
    """Record this deployment's shard count on its first start (and the version, once no v1 data is left);
    UnusableRedis if Redis holds data laid out in another number of shards, or a change of that number has not
    finished."""
    moving_to = await redis.hget(keys.LAYOUT, MOVING_TO)
    if moving_to is not None:
        target = decode.text(moving_to)
        raise UnusableRedis(
            f"a change of this Redis's data to {target} queue shards has not finished: stop every process, run "
            f"`python -m bot migrate --queue-shards {target}` again to finish it, then start with QUEUE_SHARDS={target}"
        )
    await redis.hsetnx(keys.LAYOUT, "shards", str(space.shards))
    if record_version:
        await redis.hsetnx(keys.LAYOUT, "version", str(keys.LAYOUT_VERSION))
    recorded = await redis.hget(keys.LAYOUT, "shards")
    shards = decode.text(recorded) if recorded is not None else str(space.shards)
    if shards != str(space.shards):
        raise UnusableRedis(
            f"this Redis holds data laid out in {shards} queue shards, but QUEUE_SHARDS is {space.shards}: "
            f"set QUEUE_SHARDS={shards}, or, to change the data's number of shards, stop every process and run "
            f"`python -m bot migrate --queue-shards {space.shards}`"
        )
