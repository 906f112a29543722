"""The pass of a change of the number of queue shards (store/reshard.py): what each key found is, and how each unit
moves from its old hash tag to its new one (copies first, then the old keys go).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any

from store import decode
from store import reshard_lua as lua
from store.connection import RedisClient
from store.errors import CorruptRecord
from store.keys import KeySpace
from store.models import ThreadRef

log = logging.getLogger(__name__)

_INDEX_BATCH = 500  # index entries added per script


@dataclass
class ReshardReport:
    """What a run moved."""

    threads: int = 0  # threads whose keys moved to their new shard's tag
    queued: int = 0  # of those, threads with work, each now with an entry in its new shard's stream
    kept: int = 0  # threads whose old and new shards have the same tag: left as they were
    tasks: int = 0  # task records moved (queued, running, finished), with their journals
    index_entries: int = 0  # channel index entries moved
    usage_totals: int = 0  # old shards' channel usage hashes added to the new shards'
    dropped: int = 0  # task records that name no thread of their tag: nothing could ever read them
    unknown: int = 0  # keys with an old tag that are none of the above: left as they are (logged)
    streams: int = 0  # old shards' streams deleted


@dataclass
class _Page:
    """The units a page of the SCAN found, each once (a thread's keys may be found apart, or twice)."""

    threads: dict[ThreadRef, None] = field(default_factory=dict)
    tasks: dict[str, tuple[str, str]] = field(default_factory=dict)  # old key: team, task id
    usage: dict[tuple[str, str, int], None] = field(default_factory=dict)  # team, channel, old shard
    staged: dict[tuple[str, str, int], None] = field(default_factory=dict)  # staging keys a run left
    indexes: dict[tuple[str, str, int], None] = field(default_factory=dict)  # team, channel, old shard


class ShardPass:
    """One pass of a change of the number of shards, a page of the SCAN at a time, counting into the report.

    The units of a page move together, in pipelines (one round trip per step for hundreds of units): every unit's
    old keys are read, then all copies are written, then all old keys deleted, then the usage totals added. A step
    starts only once the one before has ended for every unit, so each unit's copies exist before its old keys go.
    """

    def __init__(self, redis: RedisClient, old: KeySpace, new: KeySpace, report: ReshardReport, at_once: int) -> None:
        self._redis = redis
        self._old = old
        self._new = new
        self._report = report
        self._at_once = at_once
        self._kept: set[ThreadRef] = set()
        self._merge_index = redis.register_script(lua.MERGE_INDEX)

    async def page(self, keys_found: list[str]) -> None:
        """Move what the keys belong to."""
        page = _Page()
        for key in keys_found:
            parts = key.split(":")
            if len(parts) < 5 or not (parts[2].startswith("{") and parts[2].endswith("}")):
                continue  # not a key of a shard: the layout, the workers, user names, the streams
            try:
                self._sort(page, key, parts[1], parts[2][1:-1], parts[3], parts[4:])
            except ValueError:  # not a thread reference: nothing of ours
                self._unknown(key, parts[2][1:-1])
        await self._move(page)
        await _bounded([self.index(*unit) for unit in page.indexes], self._at_once)
        self._report.kept = len(self._kept)

    def _sort(self, page: _Page, key: str, team: str, tag: str, kind: str, rest: list[str]) -> None:
        """Add the unit a key with hash tag `tag` belongs to, if it has to move."""
        if kind == "channel" and len(rest) == 3 and rest[1] == "usage":
            source = int(rest[2]) if rest[2].isdigit() and int(rest[2]) < self._old.shards else None
            if source is not None and key == self._staging_key(team, rest[0], source):
                page.staged[team, rest[0], source] = None
            else:
                self._unknown(key, tag)
            return
        shard = self._old.shard_of_tag(tag)
        if shard is None:
            return  # a key of the new shards
        if kind == "thread" and len(rest) == 3:
            self._sort_thread(page, key, tag, ThreadRef(team, rest[0], rest[1]), rest[2])
        elif kind == "task" and rest:
            page.tasks[key] = (team, ":".join(rest))
        elif kind == "channel" and rest[1:] == ["threads"]:
            page.indexes[team, rest[0], shard] = None
        elif kind == "channel" and rest[1:] == ["usage"]:
            if key != self._target_usage(team, rest[0], shard):  # (the same key in both: where it belongs)
                page.usage[team, rest[0], shard] = None
        else:
            self._unknown(key, tag)

    def _sort_thread(self, page: _Page, key: str, tag: str, ref: ThreadRef, part: str) -> None:
        names = {
            "state": (self._old.state, self._new.state),
            "inbox": (self._old.inbox, self._new.inbox),
            "queued": (self._old.queued, self._new.queued),
        }
        if part not in names:
            self._unknown(key, tag)
            return
        old_key, new_key = (name(ref) for name in names[part])
        if key == old_key == new_key:
            self._kept.add(ref)
        elif key == old_key:
            page.threads[ref] = None
        elif key != new_key:
            self._unknown(key, tag)

    def _unknown(self, key: str, tag: str) -> None:
        """Count and log a key of an old tag that is none of ours (a key of a new tag only is left alone)."""
        if self._old.shard_of_tag(tag) is not None and self._new.shard_of_tag(tag) is None:
            self._report.unknown += 1
            log.warning("left %s as it is: not a key this release knows", key[:200])

    async def _move(self, page: _Page) -> None:
        """Move the page's threads, tasks and usage totals: read, copy, delete, add (see the class)."""
        redis, old = self._redis, self._old
        reads = redis.pipeline(transaction=False)
        for ref in page.threads:
            for key in (old.state(ref), old.inbox(ref)):
                reads.dump(key)
                reads.pttl(key)
            reads.exists(old.queued(ref))
        for key in page.tasks:
            reads.hget(key, "thread")
            reads.dump(key)
            reads.pttl(key)
        for team, channel, shard in page.usage:
            reads.dump(old.channel_usage(team, channel, shard))
            reads.pttl(old.channel_usage(team, channel, shard))
        for team, channel, shard in page.staged:
            reads.exists(old.channel_usage(team, channel, shard))
        replies = iter(await reads.execute())
        copies, drops = redis.pipeline(transaction=False), redis.pipeline(transaction=False)
        threads = [ref for ref in page.threads if self._thread(ref, replies, copies, drops)]
        for key, (team, task_id) in page.tasks.items():
            self._task(key, team, task_id, replies, copies, drops)
        for team, channel, shard in page.usage:
            self._usage(team, channel, shard, replies, copies, drops)
        merges = list(page.usage)
        merges += [unit for unit in page.staged if not next(replies)]  # (a source still there is copied again)
        copied = await copies.execute()
        await drops.execute()
        self._report.threads += len(threads)
        self._report.queued += sum(int(queued) for queued in copied[: len(threads)])  # MOVE_IN's come first
        adds = redis.pipeline(transaction=False)
        for team, channel, shard in merges:
            target, staged = self._target_usage(team, channel, shard), self._staging_key(team, channel, shard)
            adds.eval(lua.MERGE_USAGE, 2, target, staged)
        self._report.usage_totals += sum(int(added) for added in await adds.execute())

    def _thread(self, ref: ThreadRef, replies: Iterator[Any], copies: Any, drops: Any) -> bool:
        """Queue a thread's move: its copies and entry at the new tag (one script), the old keys' end (another).
        False if nothing of it is left at the old tag (it moved since the SCAN found it)."""
        old, new = self._old, self._new
        state, state_ttl, inbox, inbox_ttl, flagged = (next(replies) for _ in range(5))
        state, inbox = _present(state, state_ttl), _present(inbox, inbox_ttl)
        if state is None and inbox is None and not flagged:
            return False
        copies.eval(
            lua.MOVE_IN,
            4,
            *(new.state(ref), new.inbox(ref), new.queued(ref), new.thread_queue(ref)),
            *(ref.encode(), state or b"", _restore_ttl(state_ttl), inbox or b"", _restore_ttl(inbox_ttl)),
        )
        drops.eval(lua.DROP_OLD, 4, old.state(ref), old.inbox(ref), old.queued(ref), old.thread_queue(ref))
        return True

    def _task(self, key: str, team: str, task_id: str, replies: Iterator[Any], copies: Any, drops: Any) -> None:
        """Queue the move of a task record found under an old tag to its thread's new shard, with its TTL."""
        thread, payload, pttl = (next(replies) for _ in range(3))
        payload = _present(payload, pttl)
        if payload is None:
            return  # gone since the SCAN found it
        ref = _thread_of(thread, team)
        if ref is not None and self._new.task(ref, task_id) == key:
            return  # a new record (of a thread whose tag is a new one and an old one), or one that stays
        drops.delete(key)
        if ref is None or self._old.task(ref, task_id) != key:
            # Readers look a task up by its thread's shard: a record elsewhere, or naming no thread, is never read.
            log.warning("dropped task record %s: it names no thread of its shard", key[:200])
            self._report.dropped += 1
            return
        copies.restore(self._new.task(ref, task_id), _restore_ttl(pttl), payload, replace=True)
        self._report.tasks += 1

    def _usage(self, team: str, channel: str, shard: int, replies: Iterator[Any], copies: Any, drops: Any) -> None:
        """Queue the first steps of adding an old shard's channel usage to a new shard's, never twice, though no
        step can span both slots (the last step, MERGE_USAGE, follows once these are done).

        Adding (HINCRBY) cannot be repeated safely, and the old hash cannot be deleted in the same step, so the old
        hash is first copied whole to a staging key beside the target (RESTORE ... REPLACE: a second copy is the
        same copy), then deleted, and only then is the staging key added to the target and deleted, in one script
        (MERGE_USAGE). A staging key is only written while its source exists, and added only once its source is
        gone (a staging key found by the SCAN is added only if its source is gone): so the source's counters are
        added exactly once, wherever a run stops and however often it is run again.
        """
        source = self._old.channel_usage(team, channel, shard)
        payload, pttl = next(replies), next(replies)
        payload = _present(payload, pttl)
        if payload is not None:
            copies.restore(self._staging_key(team, channel, shard), _restore_ttl(pttl), payload, replace=True)
            drops.delete(source)

    async def index(self, team: str, channel: str, shard: int) -> None:
        """Move the entries of an old shard's channel index to their threads' new shards' indexes."""
        key = self._old.channel_threads(team, channel, shard)
        pttl = int(await self._redis.pttl(key))
        if pttl == -2:
            return
        moving: dict[str, list[tuple[str, float]]] = defaultdict(list)
        async for member, score in self._redis.zscan_iter(key, count=1000):
            thread_ts = decode.text(member)
            try:
                target = self._new.thread_channel_threads(ThreadRef(team, channel, thread_ts))
            except ValueError:  # no thread's: readers could not read it either
                target = ""
            if target != key:
                moving[target].append((thread_ts, float(score)))
        moving.pop("", None)
        for target, entries in moving.items():
            for start in range(0, len(entries), _INDEX_BATCH):
                batch = entries[start : start + _INDEX_BATCH]
                pairs = [value for ts, score in batch for value in (repr(score), ts)]
                await self._merge_index(keys=[target], args=[pttl, *pairs])
        if key in self._new_indexes(team, channel):  # the same tag in both: it stays, with what did not move
            for entries in moving.values():
                await self._redis.zrem(key, *(ts for ts, _ in entries))
        else:
            await self._redis.delete(key)
        self._report.index_entries += sum(len(entries) for entries in moving.values())

    def _new_indexes(self, team: str, channel: str) -> set[str]:
        return {self._new.channel_threads(team, channel, shard) for shard in range(self._new.shards)}

    def _target_usage(self, team: str, channel: str, shard: int) -> str:
        """The new usage hash an old shard's goes into: readers sum the shards, so any one will do; shard % count
        keeps a shard whose tag both numbers share in place."""
        return self._new.channel_usage(team, channel, shard % self._new.shards)

    def _staging_key(self, team: str, channel: str, shard: int) -> str:
        return self._new.staged_usage(team, channel, shard % self._new.shards, shard)


def _present(payload: Any, pttl: Any) -> bytes | None:
    """A DUMP's payload, or None if the key is gone (it may expire between the DUMP and the PTTL)."""
    return None if payload is None or int(pttl) == -2 else bytes(payload)


def _restore_ttl(pttl: Any) -> int:
    """RESTORE's TTL argument for a key that had `pttl` ms left: 0 (none) for a key without one."""
    return max(int(pttl), 0)


def _thread_of(raw: Any, team: str) -> ThreadRef | None:
    """The thread a task record names, if it is a thread of the team whose key it is under."""
    if raw is None:
        return None
    try:
        ref = ThreadRef.decode(decode.text(raw))
    except (CorruptRecord, ValueError):
        return None
    return ref if ref.team_id == team else None


async def _bounded(work: list[Awaitable[None]], limit: int) -> None:
    """Await every unit, at most `limit` at once; the first error is raised once all have ended (each unit is
    complete or can be run again, so the others may as well finish)."""
    gate = asyncio.Semaphore(limit)

    async def one(unit: Awaitable[None]) -> None:
        async with gate:
            await unit

    results = await asyncio.gather(*(one(unit) for unit in work), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
