"""The migration from layout v1 to v2, on data written by the last v1 release (tests/fixtures/layout_v1)."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from store import keys, keys_v1
from store.keys import KeySpace
from store.layout import live_v1_consumers, needs_migration
from store.migrate import MigrationReport, migrate_v1
from store.models import USAGE_FIELDS, ThreadRef
from tests.conftest import redis_url_for_tests

FIXTURE = Path(__file__).parents[2] / "fixtures" / "layout_v1" / "data.json"
SPACE = KeySpace(4)  # few shards, so that a channel's threads share some and not others
A = ThreadRef("T1", "C1", "1700000000.000100")  # two answers, the first folded into the summary
B = ThreadRef("T1", "C1", "1700000100.000200")  # a note queued
C = ThreadRef("T1", "C1", "1700000200.000300")  # an answer running on worker.2, a note behind it
F = ThreadRef("T1", "C1", "1700000300.000400")  # a first answer queued
G = ThreadRef("T2", "C9", "1700000600.000700")  # an answer running when web.1 died
QUEUED = {B: ["EvB2"], C: ["EvC2", "EvC3"], F: ["EvF1"], G: ["EvG1"]}


@cache
def fixture() -> dict[str, dict[str, Any]]:
    """The v1 dataset's keys by name (type, pttl, dump, value)."""
    rows = json.loads(FIXTURE.read_text())["keys"]
    return {row["key"]: row for row in rows}


async def restore(redis: Redis) -> None:
    """Put the v1 dataset into the (emptied) test Redis, each key with the TTL it had left.

    RESTORE takes a DUMP back exactly (a stream with its consumer group and pending entries too), on the Redis
    version that wrote it (7.0) or a later one.
    """
    for key, row in fixture().items():
        await redis.restore(key, max(row["pttl"], 0), base64.b64decode(row["dump"]), replace=True)


async def migrate(redis: Redis, live: frozenset[str] = frozenset()) -> MigrationReport:
    """One pass with the test key space."""
    return await migrate_v1(redis, SPACE, live_consumers=set(live))


def v1_value(ref: ThreadRef, part: keys_v1.Part) -> Any:
    """The readable value a v1 thread key had in the dataset."""
    return fixture()[keys_v1.thread_key(ref, part)]["value"]


def expected_state(ref: ThreadRef) -> dict[str, str]:
    """A v1 agent as v2 keeps it: its state fields plus its window of turns as fields turn:N."""
    state = dict(v1_value(ref, "state"))
    first = int(state.get("summarized_turns", "0"))
    turns = v1_value(ref, "turns") if keys_v1.thread_key(ref, "turns") in fixture() else []
    state.update({f"{keys.TURN_FIELD}{first + i}": turn for i, turn in enumerate(turns)})
    return state


def v1_refs(part: keys_v1.Part) -> list[ThreadRef]:
    """The threads that had a key of this part in the dataset."""
    parsed = (keys_v1.parse(key) for key in fixture())
    return [key.ref for key in parsed if key is not None and key.ref is not None and key.part == part]


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every key's type, value and whether it expires; stream entry ids (they carry the time they were made) are
    replaced by the thread they name, in the streams and in the flags that hold them."""
    rows: dict[str, list[Any]] = {}
    threads: dict[tuple[str, str], str] = {}  # (stream, entry id): thread
    for key in sorted(await redis.keys("*")):
        kind = await redis.type(key)
        value: Any
        if kind == "stream":
            entries = await redis.xrange(key)
            threads.update({(key, entry_id): fields["thread"] for entry_id, fields in entries})
            groups = [(group["name"], group["pending"]) for group in await redis.xinfo_groups(key)]
            value = [sorted(fields["thread"] for _, fields in entries), groups]
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        else:
            value = await redis.get(key)
        rows[key] = [kind, value, await redis.pttl(key) > 0]
    for key, row in rows.items():
        if key.endswith(":queued"):
            ref = SPACE.thread_of_queued(key)
            stream = keys_v1.QUEUE if ref is None else SPACE.thread_queue(ref)
            row[1] = "entry of " + threads.get((stream, row[1]), "nothing")
    return rows


class CrashingRedis(Redis):
    """A client whose process dies after `survive` scripts: the next one runs in Redis, but its answer is lost."""

    survive = 0
    scripts = 0

    def _count(self) -> None:
        self.scripts += 1
        if self.scripts > self.survive:
            raise RedisConnectionError("the process died")

    async def evalsha(self, *args: Any) -> Any:  # type: ignore[override]  # how registered scripts run
        result = await super().evalsha(*args)
        self._count()
        return result

    async def eval(self, *args: Any) -> Any:  # type: ignore[override]  # how one-off scripts run
        result = await super().eval(*args)
        self._count()
        return result


async def test_every_agent_arrives_with_its_turns_summary_usage_and_ttl(redis: Redis) -> None:
    """Each v1 agent becomes a v2 state hash with the same fields, its turns as turn:N, and its remaining TTL."""
    await restore(redis)
    await migrate(redis)
    refs = v1_refs("state")
    assert len(refs) == 7
    for ref in refs:
        assert await redis.hgetall(SPACE.state(ref)) == expected_state(ref), ref
        recorded = fixture()[keys_v1.thread_key(ref, "state")]["pttl"]
        assert recorded - 60_000 < await redis.pttl(SPACE.state(ref)) <= recorded
    state = await redis.hgetall(SPACE.state(A))
    assert state["summary"].startswith("Ana asked for the Q3 budget") and state["summarized_turns"] == "2"
    assert [state[f"{keys.TURN_FIELD}{n}"] for n in (2, 3)] == v1_value(A, "turns")
    assert f"{keys.TURN_FIELD}0" not in state and state["turns"] == "4"


async def test_queued_and_running_work_is_queued_in_v2_with_tasks_and_journals(redis: Redis) -> None:
    """Each v1 inbox becomes the v2 inbox in order, under one new undelivered entry that its flag names."""
    await restore(redis)
    report = await migrate(redis)
    assert (report.threads, report.queued, report.remaining) == (7, 5, False)
    for ref, inbox in QUEUED.items():
        assert await redis.lrange(SPACE.inbox(ref), 0, -1) == inbox
        assert await redis.ttl(SPACE.inbox(ref)) == -1  # v2 inboxes live as long as their entry
        entry = await redis.get(SPACE.queued(ref))
        [(_, fields)] = await redis.xrange(SPACE.thread_queue(ref), entry, entry)
        assert fields == {"thread": ref.encode()}
    delivered = await redis.xreadgroup(keys.WORKER_GROUP, "new.1", dict.fromkeys(SPACE.queues(), ">"), count=100)
    threads = sorted(fields["thread"] for _, entries in delivered for _, fields in entries)
    assert threads == sorted(ref.encode() for ref in QUEUED)
    running = await redis.hgetall(SPACE.task(C, "EvC2"))
    steps = fixture()[keys_v1.steps("T1", "EvC2")]["value"]
    expected = {**fixture()[keys_v1.task("T1", "EvC2")]["value"], "step:0": steps[0], "step:1": steps[1]}
    assert running == expected and running["reply_ts"] == "1700000200.0009"
    assert not await redis.exists(keys_v1.QUEUE)


async def test_every_task_record_moves_with_its_ttl(redis: Redis) -> None:
    """Finished tasks (the dedupe records of their events) move to their thread's shard, keeping their TTL."""
    await restore(redis)
    await migrate(redis)
    parsed = [(keys_v1.parse(key), row) for key, row in fixture().items()]
    tasks = [row for key, row in parsed if key is not None and key.kind == "task" and key.part == ""]
    assert len(tasks) == 14
    for row in tasks:
        new = SPACE.task(ThreadRef.decode(row["value"]["thread"]), row["value"]["task_id"])
        fields = await redis.hgetall(new)
        assert {name: value for name, value in fields.items() if not name.startswith("step:")} == row["value"]
        assert row["pttl"] - 60_000 < await redis.pttl(new) <= row["pttl"]


async def test_channel_indexes_and_usage_totals_move_and_sum_across_shards(redis: Redis) -> None:
    """The shards' usage hashes of a channel add up to its v1 totals; its index entries keep their scores."""
    await restore(redis)
    report = await migrate(redis)
    for team, channel in (("T1", "C1"), ("T1", "C2"), ("T2", "D1")):
        stored = fixture()[keys_v1.channel_usage(team, channel)]["value"]
        # (counters added since v1, such as cache_write_1h_tokens, read as 0)
        expected = dict.fromkeys(USAGE_FIELDS, 0) | {name: int(value) for name, value in stored.items()}
        assert await usage_of(redis, team, channel) == expected
    members: dict[str, float] = {}
    for shard in range(SPACE.shards):
        members.update(await redis.zrange(SPACE.channel_threads("T1", "C1", shard), 0, -1, withscores=True))
    assert members == dict(fixture()[keys_v1.channel_threads("T1", "C1")]["value"])
    assert (report.usage_totals, report.index_entries) == (3, 7)


async def usage_of(redis: Redis, team: str, channel: str) -> dict[str, int]:
    """A channel's usage as v2 readers see it: the shards' hashes summed."""
    total = dict.fromkeys(USAGE_FIELDS, 0)
    for shard in range(SPACE.shards):
        for name, value in (await redis.hgetall(SPACE.channel_usage(team, channel, shard))).items():
            total[name] += int(value)
    return total


async def test_no_v1_key_is_left_and_the_layout_says_v2(redis: Redis) -> None:
    """After a pass with no old worker alive, only v2 keys and the keys both layouts share remain."""
    await restore(redis)
    await migrate(redis)
    left = [key for key in await redis.keys("*") if keys_v1.parse(key) is not None or key == keys_v1.QUEUE]
    assert left == []
    assert await redis.hgetall(keys.LAYOUT) == {"version": "2", "shards": "4"}
    assert await redis.get(keys.user_name("T1", "U1")) == "Ana" and await redis.ttl(keys.user_name("T1", "U1")) > 0


async def test_a_second_pass_changes_nothing(redis: Redis) -> None:
    """Running the migration again on migrated data moves nothing and leaves every key as it was."""
    await restore(redis)
    await migrate(redis)
    before = await snapshot(redis)
    report = await migrate(redis)
    assert report == MigrationReport()
    assert await snapshot(redis) == before


async def test_a_pass_that_dies_anywhere_then_runs_again_ends_like_one_clean_pass(redis: Redis) -> None:
    """Whichever script's answer is lost when the process dies, running again gives the same data as one pass."""
    await restore(redis)
    await migrate(redis)
    clean = await snapshot(redis)
    crashing = CrashingRedis.from_url(redis_url_for_tests(), decode_responses=True)
    try:
        survive = 0
        while True:
            await redis.flushdb()
            await restore(redis)
            crashing.survive, crashing.scripts = survive, 0
            try:
                await migrate(crashing)
            except RedisConnectionError:
                report = await migrate(redis)
                assert not report.remaining
                assert await snapshot(redis) == clean, f"died after {survive} scripts"
                survive += 1
                continue
            break
    finally:
        await crashing.aclose()
    # Every script of a pass was interrupted once: 7 threads, 9 finished tasks, 7 index entries, 3 usage totals and
    # the deletion of the old queue.
    assert survive == 27


async def test_a_thread_held_by_a_live_old_worker_is_left_until_that_worker_is_gone(redis: Redis) -> None:
    """A thread whose v1 entry is pending to a live consumer keeps its v1 keys; once it is gone, the thread moves."""
    await restore(redis)
    report = await migrate(redis, frozenset({"worker.2"}))
    assert (report.left, report.remaining) == (1, True)
    for part in keys_v1.THREAD_PARTS:
        assert await snapshot_value(redis, keys_v1.thread_key(C, part)) == v1_value(C, part)
    assert await redis.hget(keys_v1.task("T1", "EvC1"), "status") == "done"  # its finished task waits with it
    assert not await redis.exists(SPACE.state(C), SPACE.inbox(C))
    assert await redis.zscore(keys_v1.channel_threads("T1", "C1"), C.thread_ts) is not None
    assert await redis.lrange(SPACE.inbox(G), 0, -1) == ["EvG1"]  # the dead web.1's thread moved...
    [(entry, fields)] = await redis.xrange(keys_v1.QUEUE)  # ...and its old entry was acknowledged and deleted
    assert fields == {"thread": C.encode()} and entry == v1_value(C, "queued")
    assert (await redis.xpending(keys_v1.QUEUE, keys.WORKER_GROUP))["pending"] == 1
    assert await redis.hget(keys.LAYOUT, "version") is None
    assert await needs_migration(redis)
    report = await migrate(redis)
    assert (report.threads, report.left, report.remaining) == (1, 0, False)
    assert await redis.hgetall(SPACE.state(C)) == expected_state(C)
    assert await redis.lrange(SPACE.inbox(C), 0, -1) == ["EvC2", "EvC3"]
    assert not await needs_migration(redis)


class MeddlingRedis(Redis):
    """A client on a Redis where an old process does `meddle` just before the pass's first script for `thread`."""

    thread = ""
    meddle: Callable[[Redis], Awaitable[None]] | None = None

    async def evalsha(self, *args: Any) -> Any:  # type: ignore[override]  # how registered scripts run
        if self.meddle is not None and self.thread in args:
            meddle, self.meddle = self.meddle, None
            await meddle(self)
        return await super().evalsha(*args)


async def meddled_migration(thread: ThreadRef, meddle: Callable[[Redis], Awaitable[None]], live: set[str]) -> Any:
    """A pass during which an old process does `meddle` just before the pass moves `thread`."""
    meddling = MeddlingRedis.from_url(redis_url_for_tests(), decode_responses=True)
    meddling.thread, meddling.meddle = thread.encode(), meddle
    try:
        return await migrate(meddling, frozenset(live))
    finally:
        await meddling.aclose()


async def test_a_thread_an_old_worker_takes_over_during_the_pass_is_left_to_it(redis: Redis) -> None:
    """A thread claimed by a live old worker after the pass looked for held threads is still left, in one step."""
    await restore(redis)

    async def take_over(client: Redis) -> None:
        entry = await client.get(keys_v1.thread_key(G, "queued"))
        await client.xclaim(keys_v1.QUEUE, keys.WORKER_GROUP, "worker.9", 0, [entry])

    report = await meddled_migration(G, take_over, {"worker.9"})
    assert (report.left, report.remaining) == (1, True)
    assert await redis.lrange(keys_v1.thread_key(G, "inbox"), 0, -1) == ["EvG1"]
    assert not await redis.exists(SPACE.inbox(G), SPACE.state(G), SPACE.task(G, "EvG1"))


async def test_a_task_an_old_intake_adds_while_the_pass_reads_the_inbox_moves_too(redis: Redis) -> None:
    """A v1 task submitted between the pass's read of the inbox and its move is moved with the rest, in order."""
    await restore(redis)
    note = {**fixture()[keys_v1.task("T1", "EvB2")]["value"], "task_id": "EvB3"}

    async def submit(client: Redis) -> None:  # what v1's SUBMIT writes for a thread already queued
        await client.hset(keys_v1.task("T1", "EvB3"), mapping=note)
        await client.expire(keys_v1.task("T1", "EvB3"), keys.TASK_TTL)
        await client.rpush(keys_v1.thread_key(B, "inbox"), "EvB3")

    report = await meddled_migration(B, submit, set())
    assert not report.remaining
    assert await redis.lrange(SPACE.inbox(B), 0, -1) == ["EvB2", "EvB3"]
    assert await redis.hgetall(SPACE.task(B, "EvB3")) == note


async def snapshot_value(redis: Redis, key: str) -> Any:
    """A key's value in the fixture's readable form."""
    kind = await redis.type(key)
    if kind == "hash":
        return await redis.hgetall(key)
    if kind == "list":
        return await redis.lrange(key, 0, -1)
    return await redis.get(key)


async def test_usage_an_old_worker_adds_after_a_pass_is_added_once_by_the_next(redis: Redis) -> None:
    """Channel usage written by an old worker after a pass moves with the next pass, and nothing twice."""
    await restore(redis)
    await migrate(redis)
    moved = await usage_of(redis, "T1", "C2")
    await redis.hincrby(keys_v1.channel_usage("T1", "C2"), "input_tokens", 7)  # as v1's FINISH adds
    await redis.hincrby(keys_v1.channel_usage("T1", "C2"), "model_calls", 1)
    await migrate(redis)
    await migrate(redis)
    assert await usage_of(redis, "T1", "C2") == {**moved, "input_tokens": moved["input_tokens"] + 7, "model_calls": 12}


async def test_a_thread_with_a_v2_agent_keeps_it_and_gains_the_old_copy(redis: Redis) -> None:
    """v2's state wins (summary, window, creation); the v1 copy's turns are appended and its counters added."""
    await restore(redis)
    newer = {"created_at": "1800000000.0", "turns": "2", "summarized_turns": "1", "summary": "v2 summary"}
    newer |= {"turn:1": '{"role":"user","text":"v2"}', "tasks_done": "1", "input_tokens": "5"}
    await redis.hset(SPACE.state(A), mapping=newer)
    report = await migrate(redis)
    state = await redis.hgetall(SPACE.state(A))
    old = v1_value(A, "state")
    assert state["created_at"] == "1800000000.0" and state["turn:1"] == '{"role":"user","text":"v2"}'
    assert [state["turn:2"], state["turn:3"]] == v1_value(A, "turns") and state["turns"] == "4"
    assert state["summarized_turns"] == "1" and state["summary"] == "v2 summary\n\n" + old["summary"]
    assert state["tasks_done"] == str(1 + int(old["tasks_done"]))
    assert state["input_tokens"] == str(5 + int(old["input_tokens"]))
    assert report.merged == 1 and not await redis.exists(keys_v1.thread_key(A, "state"))


async def test_a_task_v2_recorded_already_is_not_queued_twice(redis: Redis) -> None:
    """A v1 task whose Slack event v2 intake recorded too (a retry) is dropped: one copy, queued once."""
    await restore(redis)
    entry = await redis.xadd(SPACE.thread_queue(B), {"thread": B.encode()})
    await redis.hset(SPACE.task(B, "EvB2"), mapping={"task_id": "EvB2", "status": "queued"})
    await redis.rpush(SPACE.inbox(B), "EvB2")
    await redis.set(SPACE.queued(B), entry)
    report = await migrate(redis)
    assert report.duplicates == 1
    assert await redis.lrange(SPACE.inbox(B), 0, -1) == ["EvB2"]
    assert await redis.get(SPACE.queued(B)) == entry
    entries = await redis.xrange(SPACE.thread_queue(B))
    assert [fields["thread"] for _, fields in entries].count(B.encode()) == 1


async def test_a_window_that_disagrees_with_its_counters_is_numbered_from_the_list(redis: Redis) -> None:
    """A v1 state whose turns - summarized_turns differs from its list keeps `turns` and numbers the list's turns
    as the last ones."""
    ref = ThreadRef("T9", "C9", "1.000001")
    await redis.hset(
        keys_v1.thread_key(ref, "state"), mapping={"created_at": "1.0", "turns": "5", "summarized_turns": "1"}
    )
    await redis.rpush(keys_v1.thread_key(ref, "turns"), "t-a", "t-b", "t-c")
    await migrate(redis)
    state = await redis.hgetall(SPACE.state(ref))
    assert (state["turns"], state["summarized_turns"]) == ("5", "2")
    assert [state[f"turn:{n}"] for n in (2, 3, 4)] == ["t-a", "t-b", "t-c"]
    assert await redis.ttl(SPACE.state(ref)) == keys.AGENT_TTL  # a key v1 left without a TTL gets v2's


async def test_needs_migration_is_cheap_once_the_layout_says_v2(redis: Redis) -> None:
    """needs_migration: no for an empty Redis, yes for v1 data or a v1 queue, and it trusts a v2 layout record."""
    assert not await needs_migration(redis)
    await restore(redis)
    assert await needs_migration(redis)
    await redis.delete(keys_v1.QUEUE)
    assert await needs_migration(redis)  # idle v1 agents alone still need moving
    await migrate(redis)
    assert not await needs_migration(redis)
    await redis.hset(keys_v1.thread_key(A, "state"), "created_at", "1.0")  # not looked for: no SCAN
    assert not await needs_migration(redis)
    await redis.xadd(keys_v1.QUEUE, {"thread": A.encode()})  # an old intake during a rolling deploy
    assert await needs_migration(redis)


async def test_live_v1_consumers_are_those_that_read_the_old_queue_lately(redis: Redis) -> None:
    """An old worker that just read the v1 queue is live; a consumer idle since the dataset was written is not."""
    await restore(redis)
    assert await live_v1_consumers(redis, idle_ms=10**12) == {"web.1", "worker.2"}
    await redis.xreadgroup(keys.WORKER_GROUP, "worker.2", {keys_v1.QUEUE: ">"}, count=1)
    assert await live_v1_consumers(redis, idle_ms=1000) == {"worker.2"}


async def test_migrating_into_another_shard_count_is_refused(redis: Redis) -> None:
    """A Redis whose layout record names another number of shards is not migrated into this one's keys."""
    await restore(redis)
    await redis.hset(keys.LAYOUT, "shards", "16")
    with pytest.raises(ValueError, match="16 queue shards"):
        await migrate(redis)
    assert await redis.exists(keys_v1.QUEUE)
