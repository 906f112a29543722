"""Upgrading a deployment of an earlier release in place: its data moves to the current key layout.

Every process checks at start (two reads once the data is current); the processes that run tasks move what they
find in the background, so that a start (a web dyno's, bound by its platform's boot timeout) never waits for it,
and look again every minute for as long as they run: while old processes still run beside new ones (a rolling
deploy), a pass leaves the threads they hold, and an old web process may queue work the old way until it stops.
`python -m bot migrate` runs the same passes by hand. Each step of a pass is atomic and checked before it
writes: processes may migrate at the same time, and a pass may stop anywhere (a crash, a deploy) and run again.

`python -m bot migrate --queue-shards N` moves the data to another number of queue shards (store/reshard.py),
by hand, with every process stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis

from store.connection import REDIS_FAILURES, RedisClient
from store.errors import ShardChangeRefused, UnusableRedis
from store.keys import KeySpace
from store.layout import check_layout, live_v1_consumers, needs_migration, read_layout, write_layout
from store.migrate import MigrationReport, migrate_v1
from store.reshard import ReshardReport, change_shards

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0
# The client name of `python -m bot migrate --queue-shards`'s connections: not a worker's (store/presence.py), so
# that the check for live bot processes does not count this one.
MIGRATION_CLIENT_NAME = "agent-migrate"


async def migrate_once(redis: RedisClient, space: KeySpace) -> MigrationReport | None:
    """One pass if Redis holds data of the old layout (None if it holds none); logs what moved."""
    if not isinstance(redis, Redis) or not await needs_migration(redis):
        return None
    try:
        report = await migrate_v1(redis, space, live_consumers=await live_v1_consumers(redis))
    except ValueError as exc:  # the data names another shard count
        raise UnusableRedis(str(exc)) from None
    log.warning(
        "moved data of the previous release to the current layout: %d thread(s), %d task(s) (%d queued), "
        "%d channel index entries, %d usage total(s); %s",
        report.threads,
        report.tasks,
        report.queued,
        report.index_entries,
        report.usage_totals,
        f"{report.left} thread(s) held by old workers wait for a later pass" if report.remaining else "done",
    )
    return report


async def prepare_layout(redis: RedisClient, space: KeySpace) -> bool:
    """Check (and record) the layout; True if data of the old layout waits to be moved (keep_migrating does)."""
    pending = isinstance(redis, Redis) and await needs_migration(redis)
    await check_layout(redis, space, record_version=not pending)
    return pending


async def keep_migrating(redis: RedisClient, space: KeySpace, stopping: asyncio.Event) -> None:
    """Move data of the old layout now, then look again every RETRY_SECONDS until stopping (two reads a look once
    nothing is left): an old process of a rolling deploy may still queue work the old way."""
    while not stopping.is_set():
        try:
            report = await migrate_once(redis, space)
            if report is not None and not report.remaining:
                await check_layout(redis, space, record_version=True)
        except UnusableRedis as exc:
            log.error("%s", exc)
            return
        except REDIS_FAILURES as exc:
            log.warning("cannot move data of the previous release now (%s); trying again later", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=RETRY_SECONDS)


async def migrate_until_done(redis: RedisClient, space: KeySpace, *, passes: int = 10) -> bool:
    """`python -m bot migrate`: passes until nothing is left; False if old processes still hold some threads."""
    for _ in range(passes):
        report = await migrate_once(redis, space)
        if report is None or not report.remaining:
            await check_layout(redis, space, record_version=True)
            return True
        await asyncio.sleep(1.0)
    return False


async def change_queue_shards(redis: RedisClient, shards: int) -> ReshardReport:
    """`python -m bot migrate --queue-shards N`: move the data from the number of shards agent:layout records to
    `shards` (ShardChangeRefused while bot processes run); logs what moved."""
    try:
        new = KeySpace(shards)
    except ValueError as exc:
        raise ShardChangeRefused(str(exc)) from None
    layout = await read_layout(redis)
    if layout is None or layout.shards is None:
        # Every process records the number before it writes anything of a thread: no thread was ever written.
        if isinstance(redis, Redis) and await needs_migration(redis):
            raise ShardChangeRefused("this Redis holds data of an earlier release: run `python -m bot migrate` first")
        await write_layout(redis, new)
        log.warning("no data laid out in queue shards yet: recorded %d shards", shards)
        return ReshardReport()
    if layout.shards == shards and layout.moving_to is None:
        log.warning("the data is laid out in %d queue shards already: nothing to do", shards)
        return ReshardReport()
    report = await change_shards(redis, KeySpace(layout.shards), new)
    log.warning(
        "moved the data from %d to %d queue shards: %d thread(s) (%d with work queued again), %d kept in place, "
        "%d task record(s), %d channel index entries, %d usage total(s); %d old stream(s) deleted",
        layout.shards,
        shards,
        report.threads,
        report.queued,
        report.kept,
        report.tasks,
        report.index_entries,
        report.usage_totals,
        report.streams,
    )
    return report
