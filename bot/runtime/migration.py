"""Upgrading a deployment of an earlier release in place: its data moves to the current key layout.

Every process checks at start (two reads once the data is current) and moves what it finds before it takes
work; while old processes still run beside new ones (a rolling deploy), a pass leaves the threads they hold,
and the processes that run tasks try again every minute until nothing is left. `python -m bot migrate` runs
the same passes by hand. Each step of a pass is atomic and checked before it writes: processes may migrate at
the same time, and a pass may stop anywhere (a crash, a deploy) and be run again.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from store.connection import REDIS_FAILURES, RedisClient
from store.keys import KeySpace
from store.layout import check_layout, live_v1_consumers, needs_migration
from store.migrate import MigrationReport, migrate_v1

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0


async def migrate_once(redis: RedisClient, space: KeySpace) -> MigrationReport | None:
    """One pass if Redis holds data of the old layout (None if it holds none); logs what moved."""
    if not isinstance(redis, Redis) or not await needs_migration(redis):
        return None
    report = await migrate_v1(redis, space, live_consumers=await live_v1_consumers(redis))
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
    """Migrate what is there, then check (and record) the layout; True if old data is left for a later pass."""
    report = await migrate_once(redis, space)
    pending = report is not None and report.remaining
    await check_layout(redis, space, record_version=not pending)
    return pending


async def keep_migrating(redis: RedisClient, space: KeySpace, stopping: asyncio.Event) -> None:
    """Pass again every RETRY_SECONDS until no old data is left (old processes are gone), or until stopping."""
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), timeout=RETRY_SECONDS)
            return
        except TimeoutError:
            pass
        try:
            report = await migrate_once(redis, space)
        except REDIS_FAILURES as exc:
            log.warning("cannot move data of the previous release now (%s); trying again later", exc)
            continue
        if report is None or not report.remaining:
            await check_layout(redis, space, record_version=True)
            return


async def migrate_until_done(redis: RedisClient, space: KeySpace, *, passes: int = 10) -> bool:
    """`python -m bot migrate`: passes until nothing is left; False if old processes still hold some threads."""
    for _ in range(passes):
        report = await migrate_once(redis, space)
        if report is None or not report.remaining:
            await check_layout(redis, space, record_version=True)
            return True
        await asyncio.sleep(1.0)
    return False
