"""Moving a Redis from key layout v1 (one queue stream, untagged keys: store/keys_v1.py) to v2 (store/keys.py).

A pass finds v1 keys with SCAN and moves them a unit at a time, each unit in one atomic script
(store/migrate_lua.py): a thread (its agent, turns, inbox, tasks with their journals, and queue entry), then
entries of the old queue that name threads not found yet, then finished tasks, then the channels' indexes and
usage totals. Every unit is idempotent, so a pass that dies anywhere is simply run again, and passes may run in
several processes at once. Old (v1) processes may still run during a rolling deploy: a thread whose old entry is
pending to one of `live_consumers` is left for a later pass, and what old processes write after a thread moved
(a new mention for it, a usage total) is moved by the next pass. The report says whether anything is left.

v1 only ever ran on a standalone Redis, so a migration runs on one; on a cluster there is nothing to migrate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from store import decode, keys, keys_v1
from store import migrate_lua as lua
from store.errors import CorruptRecord
from store.keys import KeySpace
from store.layout import read_layout, v1_consumers, write_layout
from store.models import ThreadRef
from store.tasks import create_groups

log = logging.getLogger(__name__)

_SCAN_COUNT = 1000
_CHANGED_RETRIES = 10  # an inbox that keeps changing under the pass: an old intake is busy with the thread


@dataclass
class MigrationReport:
    """What a pass moved, and whether v1 data (or an old worker that may still write it) is left."""

    threads: int = 0  # threads whose v1 keys moved
    merged: int = 0  # of those, threads that had a v2 agent already (the old copy was added to it)
    tasks: int = 0  # task records moved, with their journals
    queued: int = 0  # of those, tasks queued as v2 work
    duplicates: int = 0  # v1 tasks dropped because v2 had recorded the same Slack event
    index_entries: int = 0  # channel index entries moved
    usage_totals: int = 0  # channel usage hashes added to v2's
    left: int = 0  # threads left for a later pass: an old worker still holds them
    remaining: bool = False  # run another pass later: v1 keys are left, or old workers still run


async def migrate_v1(redis: Redis, space: KeySpace, *, live_consumers: set[str]) -> MigrationReport:
    """Move everything of layout v1 to v2 (see the module's docstring); record layout v2 once nothing is left."""
    await _check_shards(redis, space)
    await create_groups(redis, space)  # the entries it adds must be delivered
    report = MigrationReport()
    migration = _Pass(redis, space, live_consumers, report)
    await migration.find_held()
    await migration.threads()
    await migration.old_entries()
    await migration.finished_tasks()
    await migration.channels()
    old_workers = await v1_consumers(redis) & live_consumers
    if not old_workers:  # (an old worker still reads the queue: deleted, it would make it again at once)
        await redis.eval(lua.DROP_EMPTY_QUEUE, 1, keys_v1.QUEUE)
    report.left = len(migration.held)
    report.remaining = bool(migration.leftovers or migration.held or old_workers or await redis.exists(keys_v1.QUEUE))
    if not report.remaining:
        await write_layout(redis, space)
    log.info("layout v1 -> v2: %s", report)
    return report


async def _check_shards(redis: Redis, space: KeySpace) -> None:
    layout = await read_layout(redis)
    if layout is not None and layout.shards is not None and layout.shards != space.shards:
        raise ValueError(
            f"this Redis holds data laid out in {layout.shards} queue shards, not {space.shards}: "
            "migrate with the number of shards the deployment uses"
        )


class _Pass:
    """One pass over the keyspace; counts into the report."""

    def __init__(self, redis: Redis, space: KeySpace, live: set[str], report: MigrationReport) -> None:
        self._redis = redis
        self._space = space
        self._live = json.dumps(sorted(live))
        self._live_names = live
        self._report = report
        self.held: set[ThreadRef] = set()  # threads left: an old worker holds them
        self.leftovers = 0  # other v1 keys left (index entries and tasks of threads left)
        self._move_thread = redis.register_script(lua.MOVE_THREAD)
        self._move_task = redis.register_script(lua.MOVE_TASK)
        self._drop_journal = redis.register_script(lua.DROP_ORPHAN_JOURNAL)
        self._move_index_entry = redis.register_script(lua.MOVE_INDEX_ENTRY)
        self._move_usage = redis.register_script(lua.MOVE_USAGE)

    async def find_held(self) -> None:
        """Find the threads of the v1 entries pending to live consumers, whatever their flags say (a flag of an
        older release, "1", names no entry). MOVE_THREAD checks the flag's entry again in its atomic step."""
        for consumer in self._live_names:
            try:
                rows = await self._redis.xpending_range(keys_v1.QUEUE, keys.WORKER_GROUP, "-", "+", 10_000, consumer)
            except ResponseError:  # no v1 queue: nobody holds anything
                return
            for row in rows:
                entry_id = decode.text(row["message_id"])
                for _, fields in await self._redis.xrange(keys_v1.QUEUE, entry_id, entry_id) or []:
                    ref = _thread_of(fields)
                    if ref is not None:
                        self.held.add(ref)

    async def threads(self) -> None:
        """Move every v1 thread found by SCAN (each once per page: its four keys are found apart)."""
        async for page in _pages(self._redis):
            refs = {parsed.ref for parsed in page if parsed.kind == "thread" and parsed.ref is not None}
            for ref in refs:
                await self.thread(ref)

    async def thread(self, ref: ThreadRef, other_entry: str = "") -> None:
        """Move one thread (and drop `other_entry`, another v1 entry of it), unless an old worker holds it."""
        if ref in self.held:
            return
        v1_state, v1_turns, v1_inbox, v1_flag = keys_v1.thread_keys(ref)
        v2_keys = [
            self._space.state(ref),
            self._space.inbox(ref),
            self._space.queued(ref),
            self._space.thread_queue(ref),
        ]
        for _ in range(_CHANGED_RETRIES):
            inbox = [decode.text(task_id) for task_id in await self._redis.lrange(v1_inbox, 0, -1)]
            task_keys: list[str] = []
            for task_id in inbox:
                task_keys += [keys_v1.task(ref.team_id, task_id), keys_v1.steps(ref.team_id, task_id)]
                task_keys.append(self._space.task(ref, task_id))
            result = await self._move_thread(
                keys=[v1_state, v1_turns, v1_inbox, v1_flag, keys_v1.QUEUE, *v2_keys, *task_keys],
                args=[ref.encode(), self._live, keys.AGENT_TTL * 1000, keys.TASK_TTL * 1000, other_entry, *inbox],
            )
            code, *counts = [int(value) for value in result]
            if code != lua.CHANGED:
                break
        else:
            code = lua.LEFT  # an old intake keeps adding to it: next pass
        if code == lua.LEFT:
            self.held.add(ref)
        elif code == lua.MOVED:
            self._count_thread(*counts)

    def _count_thread(self, moved: int, queued: int, _new_entry: int, merged: int, duplicates: int) -> None:
        report = self._report
        report.threads += 1
        report.tasks += moved
        report.queued += queued
        report.merged += merged
        report.duplicates += duplicates

    async def old_entries(self) -> None:
        """Drop the v1 entries left (their threads moving first if they still have v1 keys)."""
        start = "-"
        while entries := await self._redis.xrange(keys_v1.QUEUE, start, "+", count=100):
            for raw_id, fields in entries:
                entry_id = decode.text(raw_id)
                ref = _thread_of(fields)
                if ref is None:
                    log.warning("dropped v1 queue entry %s: it names no thread", entry_id)
                    await self._redis.eval(lua.DROP_ENTRY, 1, keys_v1.QUEUE, entry_id)
                else:
                    await self.thread(ref, entry_id)
            start = "(" + decode.text(entries[-1][0])

    async def finished_tasks(self) -> None:
        """Move the tasks in no inbox (finished ones: dedupe records of their events); drop orphan journals."""
        async for page in _pages(self._redis):
            for parsed in page:
                if parsed.kind == "task":
                    await self._task(parsed.team_id, parsed.name, journal_only=parsed.part == "steps")

    async def _task(self, team_id: str, task_id: str, *, journal_only: bool) -> None:
        task_key, journal = keys_v1.task(team_id, task_id), keys_v1.steps(team_id, task_id)
        if journal_only:
            await self._drop_journal(keys=[task_key, journal])
            return
        thread = await self._redis.hget(task_key, "thread")
        if thread is None:
            return  # gone since the SCAN found it
        try:
            ref = ThreadRef.decode(decode.text(thread))
        except (CorruptRecord, ValueError):
            log.warning("dropped v1 task %s of team %s: it names no thread", task_id, team_id)
            await self._redis.delete(task_key, journal)
            return
        if ref in self.held:
            self.leftovers += 1
            return
        v1_inbox = keys_v1.thread_key(ref, "inbox")
        moved = await self._move_task(
            keys=[task_key, journal, v1_inbox, self._space.task(ref, task_id)], args=[task_id, keys.TASK_TTL * 1000]
        )
        self._report.tasks += int(moved) == 1
        self._report.duplicates += int(moved) == -1
        self.leftovers += int(moved) == 2  # still in an inbox: its thread is left (or arrived since)

    async def channels(self) -> None:
        """Move the channels' indexes (entry by entry, after their threads) and usage totals."""
        async for page in _pages(self._redis):
            for parsed in page:
                if parsed.kind != "channel":
                    continue
                if parsed.part == "usage":
                    await self._usage(parsed.team_id, parsed.name)
                else:
                    await self._index(parsed.team_id, parsed.name)

    async def _usage(self, team_id: str, channel_id: str) -> None:
        # Readers sum the shards, so the channel's v1 totals may go to any one shard: that of its top level.
        shard = self._space.shard_of(ThreadRef(team_id, channel_id, ""))
        usage = [keys_v1.channel_usage(team_id, channel_id), self._space.channel_usage(team_id, channel_id, shard)]
        self._report.usage_totals += int(await self._move_usage(keys=usage, args=[keys.AGENT_TTL * 1000]))

    async def _index(self, team_id: str, channel_id: str) -> None:
        index = keys_v1.channel_threads(team_id, channel_id)
        async for member, _score in self._redis.zscan_iter(index, count=_SCAN_COUNT):
            ref = ThreadRef(team_id, channel_id, decode.text(member))
            moved = await self._move_index_entry(
                keys=[index, self._space.thread_channel_threads(ref), *keys_v1.thread_keys(ref)],
                args=[ref.thread_ts, keys.AGENT_TTL * 1000],
            )
            self._report.index_entries += int(moved) == 1
            self.leftovers += int(moved) == 0  # its thread is left (or arrived since)


async def _pages(redis: Redis) -> AsyncIterator[list[keys_v1.V1Key]]:
    """The v1 keys, a SCAN page at a time (a key may come twice, or not at all if it was deleted meanwhile)."""
    cursor: int | None = None
    while cursor != 0:
        cursor, raw_keys = await redis.scan(cursor or 0, match=keys_v1.MATCH, count=_SCAN_COUNT)
        parsed = (keys_v1.parse(decode.text(raw)) for raw in raw_keys)
        yield [key for key in parsed if key is not None]


def _thread_of(fields: Any) -> ThreadRef | None:
    """The thread a v1 queue entry names, or None."""
    try:
        return ThreadRef.decode(decode.text((fields or {})["thread"]))
    except (KeyError, CorruptRecord, ValueError, TypeError):
        return None
