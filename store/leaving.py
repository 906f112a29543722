"""A workspace leaving: its work cancelled without a word, a mark that refuses its tasks, its data deleted later.

When the app is uninstalled from a team, Slack has already revoked its tokens: nothing the bot still does there can
be posted. So the team's queued and running tasks are cancelled in Redis, one thread's atomic step at a time, like a
reset that queues no note: the tasks are marked cancelled and the thread's queue entry is revoked, so a worker still
running one of them is refused its next write (LeaseLost) and posts nothing more. The agents' memory is kept for a
grace period, in case the team installs the app again; after it, the sweep deletes the team's data.

The mark goes down before the team's threads are looked for, which closes the race with a task queued meanwhile:
a thread queued before the look is found and cancelled, one queued after it finds the mark when its task starts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from store import decode, keys, lua
from store.connection import RedisClient
from store.errors import CorruptRecord
from store.models import ThreadRef

# Cancel one thread's work, reset-like but queueing nothing: its unfinished tasks are marked cancelled (their
# journals deleted), its queue entry revoked (the one its flag names and the one the caller found), its inbox and
# flag deleted. The agent's state stays: the team may come back within the grace period. The caller reads the inbox
# first and passes its ids, so that the script can declare their keys; if the inbox changed meanwhile it changes
# nothing and returns INBOX_CHANGED (read again and retry). Returns how many tasks it cancelled.
# KEYS: inbox, queued flag, queue, then the task of each inbox id. ARGV: the entry found, then the inbox ids.
_CANCEL = f"""
local inbox = redis.call('LRANGE', KEYS[1], 0, -1)
if #inbox ~= #ARGV - 1 then return {lua.INBOX_CHANGED} end
for i, id in ipairs(inbox) do
  if id ~= ARGV[1 + i] then return {lua.INBOX_CHANGED} end
end
local cancelled = 0
for i = 1, #inbox do
  local task = KEYS[3 + i]
  local status = redis.call('HGET', task, 'status')
  if status == 'queued' or status == 'running' then
    redis.call('HSET', task, 'status', 'cancelled')
    cancelled = cancelled + 1
  end
  local steps = {{}}
  for _, name in ipairs(redis.call('HKEYS', task)) do
    if string.sub(name, 1, 5) == '{keys.STEP_FIELD}' then table.insert(steps, name) end
  end
  if #steps > 0 then redis.call('HDEL', task, unpack(steps)) end
end
local flag = redis.call('GET', KEYS[2])
local entries = {{ARGV[1]}}
local named = flag and string.match(flag, '^%S+')
if named and named ~= ARGV[1] then table.insert(entries, named) end
for _, entry in ipairs(entries) do
  if entry ~= '' then
    redis.call('XACK', KEYS[3], '{keys.WORKER_GROUP}', entry)
    redis.call('XDEL', KEYS[3], entry)
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
return cancelled
"""

# KEYS[1] = a team's or org's installations hash. Deletes it if it holds no install (no bot, no latest, no user's):
# only the links between an org-wide install and its teams, kept through the grace period for a reinstall.
_DROP_LINKS = """
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if field == 'bot' or field == 'latest' or string.sub(field, 1, 5) == 'user:' then return 0 end
end
return redis.call('DEL', KEYS[1])
"""

_PAGE = 1000
# Slack's team and enterprise ids: a stricter pattern than a key needs, so that an id can never widen a SCAN MATCH.
_TEAM_ID = re.compile(r"[A-Z0-9]+")


@dataclass(frozen=True)
class CancelledWork:
    """What cancelling a team's work found: its threads with work, and their unfinished tasks now cancelled."""

    threads: int
    tasks: int


class Departures:
    """Teams the app was uninstalled from: their work cancelled, their tasks refused, their data deleted later."""

    def __init__(self, redis: RedisClient, space: keys.KeySpace, *, grace_seconds: int) -> None:
        self._redis = redis
        self._keys = space
        self._grace_seconds = grace_seconds
        self._cancel = redis.register_script(_CANCEL)
        self._drop_links = redis.register_script(_DROP_LINKS)

    async def mark_left(self, team_id: str, at: float | None = None) -> None:
        """Record that the app left the team: its tasks are refused from now on, its data deleted after the grace."""
        left_at = time.time() if at is None else at
        # The mark first: once it is down, no task of the team starts (the schedule alone would refuse nothing).
        await self._redis.set(keys.team_left(team_id), repr(left_at), ex=self._grace_seconds + keys.DAY)
        await self._redis.zadd(keys.LEAVING, {team_id: left_at})

    async def has_left(self, team_id: str) -> bool:
        """Whether the app was uninstalled from the team (and not installed again since)."""
        return bool(await self._redis.exists(keys.team_left(team_id)))

    async def came_back(self, team_id: str) -> None:
        """The team installed the app again: its tasks run and its data stays."""
        await self._redis.zrem(keys.LEAVING, team_id)
        await self._redis.delete(keys.team_left(team_id))

    async def cancel_team_work(self, *team_ids: str) -> CancelledWork:
        """Cancel every queued and running task of the teams (an org's uninstall names several), thread by thread,
        posting nothing.

        Their threads with work are the ones their shards' queue streams name (each has one entry while it has
        work), read a page at a time, once for all the teams."""
        threads = tasks = 0
        for shard in range(self._keys.shards):
            for entry_id, ref in await self._team_entries(frozenset(team_ids), shard):
                tasks += await self.cancel_thread(ref, entry_id)
                threads += 1
        return CancelledWork(threads, tasks)

    async def cancel_thread(self, ref: ThreadRef, entry_id: str = "") -> int:
        """Cancel the thread's unfinished tasks and revoke its queue entry (and `entry_id`); returns how many."""
        space = self._keys
        for _ in range(100):  # the inbox changes only as fast as people write in one thread
            inbox = [decode.text(task_id) for task_id in await self._redis.lrange(space.inbox(ref), 0, -1)]
            result = await self._cancel(
                keys=[
                    space.inbox(ref),
                    space.queued(ref),
                    space.thread_queue(ref),
                    *(space.task(ref, task_id) for task_id in inbox),
                ],
                args=[entry_id, *inbox],
            )
            if int(result) != lua.INBOX_CHANGED:
                return int(result)
        raise RuntimeError(f"the inbox of thread {ref.encode()} kept changing; its work not cancelled")

    async def _team_entries(self, team_ids: frozenset[str], shard: int) -> list[tuple[str, ThreadRef]]:
        """The shard's queue entries that name a thread of one of the teams, with their threads."""
        found: list[tuple[str, ThreadRef]] = []
        start = "-"
        while True:
            page = await self._redis.xrange(self._keys.queue(shard), min=start, max="+", count=_PAGE) or []
            for raw_id, fields in page:
                thread = decode.text((fields or {}).get("thread", ""))
                if thread.partition(":")[0] in team_ids:
                    try:
                        found.append((decode.text(raw_id), ThreadRef.decode(thread)))
                    except (CorruptRecord, ValueError):  # a malformed entry: the workers drop it
                        continue
            if len(page) < _PAGE:
                return found
            start = "(" + decode.text(page[-1][0] or "")

    async def due_teams(self, now: float | None = None) -> list[str]:
        """The teams that left longer than the grace period ago and have not come back."""
        cutoff = (time.time() if now is None else now) - self._grace_seconds
        return [decode.text(team) for team in await self._redis.zrangebyscore(keys.LEAVING, "-inf", cutoff)]

    async def delete_team_data(self, team_id: str) -> int:
        """Delete every key of the team but its installations (Bolt's store owns those, and a reinstall may have
        written them since; only the org links left in them go), then drop it from the schedule; returns how many
        keys went.

        It SCANs the keyspace (every primary of a cluster) for the team's keys, which is why the sweep runs it
        once per team, not on every uninstall. A team that came back (not scheduled any more) is left alone."""
        if not _TEAM_ID.fullmatch(team_id):
            raise ValueError(f"not a Slack team or enterprise id: {team_id[:40]!r}")
        if await self._redis.zscore(keys.LEAVING, team_id) is None:
            return 0
        kept = keys.installations(team_id)
        deleted = 0
        batch: list[str] = []
        async for raw_key in self._redis.scan_iter(match=f"{keys.PREFIX}:{team_id}:*", count=1000):
            key = decode.text(raw_key)
            if key != kept:
                batch.append(key)
            if len(batch) >= _PAGE:
                deleted += await self._unlink_unless_back(team_id, batch)
                batch = []
        deleted += await self._unlink_unless_back(team_id, batch)
        if await self._redis.zscore(keys.LEAVING, team_id) is not None:  # not back meanwhile
            deleted += int(await self._drop_links(keys=[kept], args=[]))
        await self._redis.zrem(keys.LEAVING, team_id)
        return deleted

    async def _unlink_unless_back(self, team_id: str, batch: list[str]) -> int:
        """UNLINK the batch unless the team came back meanwhile (checked before each batch: a SCAN of a large
        keyspace takes a while, and a reinstall's new agents must not go with the old ones)."""
        if await self._redis.zscore(keys.LEAVING, team_id) is None:
            return 0
        return await self._unlink(batch)

    async def sweep(self, now: float | None = None) -> list[str]:
        """Delete the data of every team whose grace period is over; returns those teams."""
        due = await self.due_teams(now)
        for team_id in due:
            if _TEAM_ID.fullmatch(team_id):
                await self.delete_team_data(team_id)
            else:  # not written by mark_left (its ids come from Slack): nothing of ours to delete
                await self._redis.zrem(keys.LEAVING, team_id)
        return [team_id for team_id in due if _TEAM_ID.fullmatch(team_id)]

    async def _unlink(self, batch: list[str]) -> int:
        """UNLINK the keys (the cluster client splits the command by slot: they live all over the cluster)."""
        if not batch:
            return 0
        return int(await self._redis.unlink(*batch))
