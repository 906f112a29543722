"""Counters that readers sum over the shards (a channel's usage, a channel's and a workspace's feedback), through a
change of the number of shards (store/reshard.py): each old shard's hash is added to one new shard's, exactly once,
wherever a run stops and however often it is run again.

Adding (HINCRBY) cannot be repeated safely, and no step can span the old hash's slot and the new one's, so the old
hash is first copied whole to a staging key beside the target (RESTORE ... REPLACE: a second copy is the same copy),
then deleted, and only then is the staging key added to the target and deleted, in one script (MERGE_TOTALS). A
staging key is only written while its source exists, and added only once its source is gone (a staging key found
by the SCAN is added only if its source is gone): so the source's counters are added exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import Any

from store import reshard_lua as lua
from store.connection import RedisClient
from store.keys import KeySpace


class Family(Enum):
    """Which counters a hash holds."""

    USAGE = "usage"
    CHANNEL_FEEDBACK = "channel feedback"
    TEAM_FEEDBACK = "team feedback"


@dataclass(frozen=True)
class Totals:
    """One old shard's counters hash of one family, team and channel ("" for a workspace's)."""

    family: Family
    team: str
    channel: str
    shard: int  # of the old number of shards


@dataclass(frozen=True)
class TotalsName:
    """What a key's name says of the counters it holds: their family and channel, and for a staging key the old
    shard whose counters it holds (as written: it may not be a number)."""

    family: Family
    channel: str
    staged_from: str | None


def name_of_totals(kind: str, rest: list[str]) -> TotalsName | None:
    """What the parts of a key after its team and tag (`kind`, then `rest`) say, if they name counters at all."""
    if kind == "channel" and len(rest) in (2, 3) and rest[1] in ("usage", "feedback"):
        family = Family.USAGE if rest[1] == "usage" else Family.CHANNEL_FEEDBACK
        return TotalsName(family, rest[0], rest[2] if len(rest) == 3 else None)
    if kind == "team" and len(rest) in (1, 2) and rest[0] == "feedback":
        return TotalsName(Family.TEAM_FEEDBACK, "", rest[1] if len(rest) == 2 else None)
    return None


def totals_key(space: KeySpace, family: Family, team: str, channel: str, shard: int) -> str:
    """The counters hash of a family, team and channel in one shard of `space`."""
    if family is Family.USAGE:
        return space.channel_usage(team, channel, shard)
    if family is Family.CHANNEL_FEEDBACK:
        return space.channel_feedback(team, channel, shard)
    return space.team_feedback(team, shard)


class TotalsMove:
    """Adds old shards' counters to new shards' through staging keys (see the module)."""

    def __init__(self, redis: RedisClient, old: KeySpace, new: KeySpace) -> None:
        self._redis = redis
        self._old = old
        self._new = new

    def source(self, totals: Totals) -> str:
        """The old hash."""
        return totals_key(self._old, totals.family, totals.team, totals.channel, totals.shard)

    def target(self, totals: Totals) -> str:
        """The new hash it goes into: readers sum the shards, so any one will do; shard % count keeps a shard whose
        tag both numbers share in place."""
        return totals_key(self._new, totals.family, totals.team, totals.channel, totals.shard % self._new.shards)

    def staging(self, totals: Totals) -> str:
        """The staging key beside the target."""
        team, channel, source, shard = totals.team, totals.channel, totals.shard, totals.shard % self._new.shards
        if totals.family is Family.USAGE:
            return self._new.staged_usage(team, channel, shard, source)
        if totals.family is Family.CHANNEL_FEEDBACK:
            return self._new.staged_channel_feedback(team, channel, shard, source)
        return self._new.staged_team_feedback(team, shard, source)

    def staged_by_name(self, key: str, team: str, name: TotalsName) -> Totals | None:
        """The counters a staging key of this change holds; None if `key` is not one."""
        source = name.staged_from
        if source is None or not source.isdigit() or int(source) >= self._old.shards:
            return None
        totals = Totals(name.family, team, name.channel, int(source))
        return totals if self.staging(totals) == key else None

    async def add(self, sources: Collection[Totals], staged: Collection[Totals]) -> Counter[Family]:
        """Add old hashes (`sources`) and the staging keys an earlier run left (`staged`) to their targets; how many
        hashes were added, by family."""
        reads = self._redis.pipeline(transaction=False)
        for totals in sources:
            reads.dump(self.source(totals))
            reads.pttl(self.source(totals))
        for totals in staged:
            reads.exists(self.source(totals))
        replies = iter(await reads.execute())
        copies, drops = self._redis.pipeline(transaction=False), self._redis.pipeline(transaction=False)
        for totals in sources:
            self._stage(totals, next(replies), next(replies), copies, drops)
        merges = list(sources)
        merges += [totals for totals in staged if not next(replies)]  # (a source still there is staged again)
        await copies.execute()
        await drops.execute()
        adds = self._redis.pipeline(transaction=False)
        for totals in merges:
            adds.eval(lua.MERGE_TOTALS, 2, self.target(totals), self.staging(totals))
        added: Counter[Family] = Counter()
        for totals, merged in zip(merges, await adds.execute(), strict=True):
            added[totals.family] += int(merged)
        return added

    def _stage(self, totals: Totals, payload: Any, pttl: Any, copies: Any, drops: Any) -> None:
        """Queue the copy of an old hash to its staging key and the old hash's end (nothing if it is gone)."""
        if payload is None or int(pttl) == -2:  # gone since the SCAN found it (or expired between the two reads)
            return
        copies.restore(self.staging(totals), max(int(pttl), 0), bytes(payload), replace=True)
        drops.delete(self.source(totals))
