"""Moving schedules when the number of queue shards changes (store/reshard.py): each schedule found under an old
hash tag goes to its thread's new shard, copies first (schedules_lua.MOVE_SCHEDULE_IN), then the old keys
(DROP_OLD_SCHEDULE). Its thread's and channel's indexes and its shard's due index are rebuilt from the schedules as
they move, so those keys need no move of their own: emptied, they are gone (an index's members of schedules that
expired meanwhile expire with it); what is left of an old shard's due index goes with the old streams.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from store import decode, schedules_lua
from store.errors import CorruptRecord
from store.keys import KeySpace
from store.models import ThreadRef
from store.schedules import channel_member, due_member

# The parts of a shard's keys that move with the schedules: a thread's ("schedules") and a channel's index.
INDEX_PART = "schedules"


class ScheduleMove:
    """Reads and moves the schedules a page of the SCAN found."""

    def __init__(self, old: KeySpace, new: KeySpace) -> None:
        self._old = old
        self._new = new

    @staticmethod
    def read(reads: Any, key: str) -> None:
        """Queue the reads of one schedule's hash: its DUMP, TTL, thread, next run and paused flag."""
        reads.dump(key)
        reads.pttl(key)
        reads.hmget(key, "thread", "next_at", "paused")

    def move(self, key: str, team: str, schedule_id: str, replies: Iterator[Any], copies: Any, drops: Any) -> bool:
        """Queue the move of one schedule from the replies of its reads; False if it stays or is gone."""
        payload, pttl, (thread, next_at, paused) = next(replies), int(next(replies)), next(replies)
        if payload is None or pttl == -2 or thread is None:
            return False  # expired since the SCAN found it
        try:
            ref = ThreadRef.decode(decode.text(thread))
        except (CorruptRecord, ValueError):
            return False  # names no thread: no reader could find it either
        if ref.team_id != team or self._old.schedule(ref, schedule_id) != key:
            return False
        new, old = self._new, self._old
        if new.schedule(ref, schedule_id) == key:
            return False  # the same tag in both numbers: it stays
        new_shard, old_shard = new.shard_of(ref), old.shard_of(ref)
        copies.eval(
            schedules_lua.MOVE_SCHEDULE_IN,
            4,
            new.schedule(ref, schedule_id),
            new.thread_schedules(ref),
            new.channel_schedules(ref.team_id, ref.channel_id, new_shard),
            new.timers(new_shard),
            bytes(payload),
            max(pttl, 0),
            round(time.time() * 1000),
            schedule_id,
            channel_member(ref, schedule_id),
            due_member(ref, schedule_id),
            decode.text(next_at or "0"),
            decode.text(paused or "0"),
        )
        drops.eval(
            schedules_lua.DROP_OLD_SCHEDULE,
            4,
            key,
            old.thread_schedules(ref),
            old.channel_schedules(ref.team_id, ref.channel_id, old_shard),
            old.timers(old_shard),
            schedule_id,
            channel_member(ref, schedule_id),
            due_member(ref, schedule_id),
        )
        return True
