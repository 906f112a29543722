"""Changing the number of queue shards of a deployment's data (`python -m bot migrate --queue-shards M`).

A thread's shard is a hash of its reference modulo the number of shards, and every key of a thread carries its
shard's hash tag (store/keys.py), so a new number moves most threads to other tags: on a cluster, other slots, often
on other nodes. No atomic step can span an old and a new slot, so each unit moves by copy, then delete:

- a thread: its state, inbox, votes and feedback counters are copied to its new tag (RESTORE of a DUMP, with the
  TTL it had left), its feedback counts are added to its new shard's channel and workspace counters, and, if it has
  work, it gets an entry in its new shard's stream that its flag names, in one script on the new slot; then its old
  keys, flag and stream entry go and its counts are taken from its old shard's counters, in one script on the old
  slot. The new entry is undelivered: the next worker
  to start takes it, and a task that was running resumes from its journal with its attempts counted on.
- a task record (queued, running, or finished: the dedupe record of its event; with its journal): copied, then
  deleted.
- a channel index: its entries are added to the indexes of their threads' new shards, then it is deleted.
- a channel usage hash: totals are sums, so it goes through a staging key (see store/reshard_totals.py).
- a channel's or workspace's feedback counters: what they hold once every thread has moved out with its own counts
  (the counts of threads whose own counters expired), the same way, after the SCAN (see store/reshard_pass.py).

Copying again gives the same copy, and deleting again deletes nothing, as long as nothing else writes. So the
change refuses to start while a bot process is alive, and from its start to its end agent:layout says
"moving_to", which makes every process refuse to start (check_layout): a change that stops anywhere (a crash,
Ctrl-C) is run again and ends as one clean run would. One SCAN pass finds every key that existed when it began
(old keys are only ever deleted under it), so one pass moves everything; then the old streams are deleted and the
layout records the new number.

An old and a new shard often have the same hash tag (shard 0 of 4 and of 7 both use "0-0"): a thread whose old and
new shards have the same tag keeps its keys, entry and lease as they are, and that stream stays.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from store import decode, keys
from store import reshard_lua as lua
from store.connection import RedisClient
from store.errors import ShardChangeRefused
from store.keys import KeySpace
from store.layout import MOVING_TO, needs_migration, read_layout
from store.presence import consumers_in_use
from store.reshard_pass import ReshardReport, ShardPass
from store.tasks import create_groups

__all__ = ["ReshardReport", "change_shards"]

log = logging.getLogger(__name__)

# A live worker says so every couple of seconds (TaskQueue.mark_alive); one silent for a minute has stopped.
ALIVE_SECONDS = 60.0


async def change_shards(
    redis: RedisClient, old: KeySpace, new: KeySpace, *, page_keys: int = 500, concurrency: int = 32
) -> ReshardReport:
    """Move every key from `old`'s shards to `new`'s and record the new number; ShardChangeRefused (nothing
    changed) while a bot process is alive or if the data is not laid out in `old`'s number of shards.

    Run it again after it stopped half way: it goes on where it was. `page_keys`: keys of the SCAN moved together
    (in one pipeline per step); `concurrency`: channel indexes moved at once.
    """
    fresh = await _check_layout(redis, old, new)
    report = ReshardReport()
    if fresh and old.shards == new.shards:
        return report
    await _refuse_while_alive(redis)
    await redis.hset(keys.LAYOUT, MOVING_TO, str(new.shards))
    try:
        await _refuse_while_alive(redis)  # one that started just before the mark (it is refused from now on)
    except ShardChangeRefused:
        if fresh:
            await redis.hdel(keys.LAYOUT, MOVING_TO)
        raise
    await create_groups(redis, new)  # the entries it adds must be delivered
    move = ShardPass(redis, old, new, report, concurrency)
    chunk: list[str] = []
    async for raw in redis.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
        chunk.append(decode.text(raw))
        if len(chunk) == page_keys:
            await move.page(chunk)
            chunk = []
    await move.page(chunk)
    await move.finish(page_keys)
    kept_streams = set(new.queues())
    for shard, queue in enumerate(old.queues()):
        if queue not in kept_streams:
            report.streams += int(await redis.delete(queue))
            await redis.delete(old.requeue_mark(shard))  # a requeue owed by a stream that is gone: nothing to requeue
    kept_timers = {new.timers(shard) for shard in range(new.shards)}
    for shard in range(old.shards):  # what is left of an old due index: entries of schedules that had expired
        if old.timers(shard) not in kept_timers:
            await redis.delete(old.timers(shard))
    await redis.register_script(lua.FINISH_LAYOUT)(keys=[keys.LAYOUT], args=[MOVING_TO, new.shards])
    log.info("queue shards %d -> %d: %s", old.shards, new.shards, report)
    return report


async def _check_layout(redis: RedisClient, old: KeySpace, new: KeySpace) -> bool:
    """Refuse unless the data is laid out in `old`'s number of shards, and no change to another number than `new`'s
    runs; True if no change runs yet (False: this one goes on)."""
    if isinstance(redis, Redis) and await needs_migration(redis):
        raise ShardChangeRefused(
            "this Redis holds data of an earlier release: run `python -m bot migrate` first, then change the shards"
        )
    layout = await read_layout(redis)
    shards = layout.shards if layout is not None else None
    moving_to = layout.moving_to if layout is not None else None
    if shards != old.shards:
        raise ShardChangeRefused(f"the data is laid out in {shards} queue shards, not {old.shards}")
    if moving_to is not None and moving_to != new.shards:
        raise ShardChangeRefused(
            f"a change to {moving_to} queue shards has not finished: finish it first "
            f"(`python -m bot migrate --queue-shards {moving_to}`), then change to {new.shards}"
        )
    return moving_to is None


async def _refuse_while_alive(redis: RedisClient) -> None:
    """ShardChangeRefused if a bot process is connected, or a worker said it was alive within the last minute."""
    recent = await redis.zrangebyscore(keys.WORKERS, time.time() - ALIVE_SECONDS, "+inf")
    workers = sorted(decode.text(name) for name in recent)
    connected = sorted(await consumers_in_use(redis))
    if not workers and not connected:
        return
    seen = [f"{name} is connected" for name in connected]
    seen += [f"{name} said it was alive less than a minute ago" for name in workers if name not in connected]
    raise ShardChangeRefused(
        f"bot processes are running ({'; '.join(seen)}): stop every process, web and workers, and run this again "
        "(a process that was killed rather than stopped counts as alive for a minute)"
    )
