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
from store.reshard_totals import Family, Totals, TotalsMove, name_of_totals
from store.schedules_move import INDEX_PART, ScheduleMove

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
    feedback_totals: int = 0  # old shards' channel and workspace feedback counters added to the new shards'
    dropped: int = 0  # task records that name no thread of their tag: nothing could ever read them
    unknown: int = 0  # keys with an old tag that are none of the above: left as they are (logged)
    streams: int = 0  # old shards' streams deleted
    schedules: int = 0  # schedules moved, with their entries in the indexes and the due index (issue 21)


@dataclass
class _Page:
    """The units a page of the SCAN found, each once (a thread's keys may be found apart, or twice)."""

    threads: dict[ThreadRef, None] = field(default_factory=dict)
    tasks: dict[str, tuple[str, str]] = field(default_factory=dict)  # old key: team, task id
    totals: dict[Totals, None] = field(default_factory=dict)  # old shards' counters hashes
    staged: dict[Totals, None] = field(default_factory=dict)  # staging keys a run left
    indexes: dict[tuple[str, str, int], None] = field(default_factory=dict)  # team, channel, old shard
    schedules: dict[str, tuple[str, str]] = field(default_factory=dict)  # old key: team, schedule id


class ShardPass:
    """One pass of a change of the number of shards, a page of the SCAN at a time, counting into the report.

    The units of a page move together, in pipelines (one round trip per step for hundreds of units): every unit's
    old keys are read, then all copies are written, then all old keys deleted, then the usage totals added. A step
    starts only once the one before has ended for every unit, so each unit's copies exist before its old keys go.

    A thread's feedback counts move with it (MOVE_IN adds them to its new shard's channel and workspace counters,
    DROP_OLD takes them from its old shard's), so that a vote changed later takes back a count where it is. What an
    old shard's feedback counters hold beyond its threads' (threads whose own counters expired first) is added to a
    new shard's once every thread has moved out (finish): so nothing of it is added twice.
    """

    def __init__(self, redis: RedisClient, old: KeySpace, new: KeySpace, report: ReshardReport, at_once: int) -> None:
        self._redis = redis
        self._old = old
        self._new = new
        self._report = report
        self._at_once = at_once
        self._kept: set[ThreadRef] = set()
        self._merge_index = redis.register_script(lua.MERGE_INDEX)
        self._totals = TotalsMove(redis, old, new)
        self._after_scan = _Page()  # the feedback counters found: added by finish
        self._schedules = ScheduleMove(old, new)

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

    async def finish(self, page_keys: int) -> None:
        """Add the old shards' feedback counters that the pages found to the new shards', once every thread (with its
        own counts) has moved out of them: the SCAN has ended."""
        sources, staged = list(self._after_scan.totals), list(self._after_scan.staged)
        for start in range(0, max(len(sources), len(staged)), page_keys):
            added = await self._totals.add(sources[start : start + page_keys], staged[start : start + page_keys])
            self._report.feedback_totals += added[Family.CHANNEL_FEEDBACK] + added[Family.TEAM_FEEDBACK]

    def _sort(self, page: _Page, key: str, team: str, tag: str, kind: str, rest: list[str]) -> None:
        """Add the unit a key with hash tag `tag` belongs to, if it has to move."""
        totals_name = name_of_totals(kind, rest)
        if totals_name is not None and totals_name.staged_from is not None:
            staged = self._totals.staged_by_name(key, team, totals_name)
            if staged is not None:
                self._page_for(page, staged).staged[staged] = None
            else:
                self._unknown(key, tag)
            return
        shard = self._old.shard_of_tag(tag)
        if shard is None:
            return  # a key of the new shards
        if totals_name is not None:
            totals = Totals(totals_name.family, team, totals_name.channel, shard)
            if key != self._totals.target(totals):  # (the same key in both: where it belongs)
                self._page_for(page, totals).totals[totals] = None
        elif kind in ("thread", "channel") and rest[-1:] == [INDEX_PART]:
            pass  # a thread's or channel's schedules: rebuilt as the schedules move (store/schedules_move.py)
        elif kind == "thread" and len(rest) == 3:
            self._sort_thread(page, key, tag, ThreadRef(team, rest[0], rest[1]), rest[2])
        elif kind == "task" and rest:
            page.tasks[key] = (team, ":".join(rest))
        elif kind == "channel" and rest[1:] == ["threads"]:
            page.indexes[team, rest[0], shard] = None
        elif kind == "schedule" and len(rest) == 1:
            page.schedules[key] = (team, rest[0])
        else:
            self._unknown(key, tag)

    def _page_for(self, page: _Page, totals: Totals) -> _Page:
        """Usage moves with the page that found it; feedback counters once the SCAN has ended (see the class)."""
        return page if totals.family is Family.USAGE else self._after_scan

    def _sort_thread(self, page: _Page, key: str, tag: str, ref: ThreadRef, part: str) -> None:
        names = {
            "state": (self._old.state, self._new.state),
            "inbox": (self._old.inbox, self._new.inbox),
            "queued": (self._old.queued, self._new.queued),
            "votes": (self._old.answer_votes, self._new.answer_votes),
            "feedback": (self._old.thread_feedback, self._new.thread_feedback),
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
            for key in (old.state(ref), old.inbox(ref), old.answer_votes(ref), old.thread_feedback(ref)):
                reads.dump(key)
                reads.pttl(key)
            reads.exists(old.queued(ref))
        for key in page.tasks:
            reads.hget(key, "thread")
            reads.dump(key)
            reads.pttl(key)
        for key in page.schedules:
            self._schedules.read(reads, key)
        replies = iter(await reads.execute())
        copies, drops = redis.pipeline(transaction=False), redis.pipeline(transaction=False)
        threads = [ref for ref in page.threads if self._thread(ref, replies, copies, drops)]
        for key, (team, task_id) in page.tasks.items():
            self._task(key, team, task_id, replies, copies, drops)
        for key, (team, schedule_id) in page.schedules.items():
            self._report.schedules += self._schedules.move(key, team, schedule_id, replies, copies, drops)
        copied = await copies.execute()
        await drops.execute()
        self._report.threads += len(threads)
        self._report.queued += sum(int(queued) for queued in copied[: len(threads)])  # MOVE_IN's come first
        if page.totals or page.staged:
            self._report.usage_totals += (await self._totals.add(page.totals, page.staged))[Family.USAGE]

    def _thread(self, ref: ThreadRef, replies: Iterator[Any], copies: Any, drops: Any) -> bool:
        """Queue a thread's move: its copies and entry at the new tag (one script), the old keys' end (another).
        False if nothing of it is left at the old tag (it moved since the SCAN found it)."""
        old, new = self._old, self._new
        dumps = [(next(replies), next(replies)) for _ in range(4)]  # state, inbox, votes, feedback
        flagged = next(replies)
        if all(_present(*dump) is None for dump in dumps) and not flagged:
            return False
        new_shard, old_shard = new.shard_of(ref), old.shard_of(ref)
        restores = [value for dump in dumps for value in _restorable(*dump)]
        copies.eval(
            lua.MOVE_IN,
            8,
            *(new.state(ref), new.inbox(ref), new.queued(ref), new.thread_queue(ref)),
            *(new.answer_votes(ref), new.thread_feedback(ref)),
            *(new.channel_feedback(ref.team_id, ref.channel_id, new_shard), new.team_feedback(ref.team_id, new_shard)),
            *(ref.encode(), *restores),
        )
        drops.eval(
            lua.DROP_OLD,
            8,
            *(old.state(ref), old.inbox(ref), old.queued(ref), old.thread_queue(ref)),
            *(old.answer_votes(ref), old.thread_feedback(ref)),
            *(old.channel_feedback(ref.team_id, ref.channel_id, old_shard), old.team_feedback(ref.team_id, old_shard)),
        )
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


def _present(payload: Any, pttl: Any) -> bytes | None:
    """A DUMP's payload, or None if the key is gone (it may expire between the DUMP and the PTTL)."""
    return None if payload is None or int(pttl) == -2 else bytes(payload)


def _restorable(payload: Any, pttl: Any) -> tuple[bytes | str, int]:
    """A key's DUMP and TTL as a script restores them: "" (and 0) for a key that is gone."""
    present = _present(payload, pttl)
    return (present, _restore_ttl(pttl)) if present is not None else ("", 0)


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
