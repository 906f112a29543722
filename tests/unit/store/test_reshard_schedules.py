"""Changing the number of queue shards moves schedules with their threads (store/schedules_move.py)."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from store.layout import check_layout
from store.models import ThreadRef
from store.reshard import change_shards
from store.schedules import ScheduleSpec, ScheduleStore
from tests.unit.store.reshard_data import NEW, OLD
from tests.unit.store.test_reshard import tags

NOW = time.time()
MOVED = ThreadRef("T1", "C1", "1700000000.000100")  # shard 3 of 4 -> 2 of 7
KEPT = ThreadRef("T1", "C1", "1700000034.000100")  # shard 0 -> 0: the same tag
DM = ThreadRef("T2", "D1", "")  # 1 -> 2


async def test_schedules_move_to_their_threads_new_shards_and_fire_there(redis: Redis) -> None:
    """Every schedule (paused ones too) is listed as before under the new number, its TTL kept; the due ones fire
    from the new shards' due indexes, a paused one does not; no key of an old tag is left."""
    await check_layout(redis, OLD, record_version=True)
    old = ScheduleStore(redis, OLD)
    for ref in (MOVED, KEPT, DM):
        await old.create(ScheduleSpec(ref, NOW + 600, f"note of {ref.thread_ts}", "U1"), NOW)
    paused = await old.create(ScheduleSpec(MOVED, NOW + 60, "recurring", "U1", every=600), NOW)
    await old.record_outcome(MOVED, paused.schedule_id, "sched-a", ok=False)
    for n in range(3):
        await old.record_outcome(MOVED, paused.schedule_id, f"sched-{n}", ok=False)
    before = {ref: await old.list_thread(ref) for ref in (MOVED, KEPT, DM)}
    ttl = await redis.pttl(OLD.schedule(MOVED, paused.schedule_id))

    report = await change_shards(redis, OLD, NEW)

    assert report.schedules == 3 and report.unknown == 0  # KEPT's stays where it is
    new = ScheduleStore(redis, NEW)
    assert {ref: await new.list_thread(ref) for ref in (MOVED, KEPT, DM)} == before
    assert [s.schedule_id for s in await new.list_channel("T1", "C1")] != []
    assert abs(await redis.pttl(NEW.schedule(MOVED, paused.schedule_id)) - ttl) < 5000
    fired = 0
    for shard in range(NEW.shards):
        fired += (await new.fire(shard, await new.due(shard, NOW + 700, 100), NOW + 700))[0]
    assert fired == 3
    gone = tags(OLD) - tags(NEW)
    assert not [key for key in await redis.keys("agent:*") if any(tag in key for tag in gone)]
