"""A channel's memory in Redis: snapshots, changes applied only on the version they were computed from, caps, and
a tool call's change applied once however often it is replayed."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from store import keys
from store.memory import MemoryChange, MemoryFull, MemoryLimits, MemoryStore

SCOPE = "T1:C1"


def make_store(redis: Redis, limits: MemoryLimits | None = None) -> MemoryStore:
    return MemoryStore(redis, limits or MemoryLimits(), ttl_seconds=3600, applied_ttl_seconds=60)


async def test_a_change_is_applied_and_read_back_with_a_new_version(redis: Redis) -> None:
    """Files written by a change are in the next snapshot, sorted by path, and the version moved on."""
    store = make_store(redis)
    before = await store.snapshot(SCOPE)
    assert before.files == {} and before.version == 0
    change = MemoryChange({"/memories/b.md": "two", "/memories/a.md": "one"}, "ok")
    applied = await store.commit(SCOPE, before, change, "toolu_1")
    assert applied is not None and applied.result == "ok" and not applied.repeated
    after = await store.snapshot(SCOPE)
    assert list(after.files) == ["/memories/a.md", "/memories/b.md"] and after.version == 1
    assert 0 < await redis.pttl(keys.memory_files(SCOPE)) <= 3600_000
    assert 0 < await redis.pttl(keys.memory_applied(SCOPE, "toolu_1")) <= 60_000


async def test_the_same_tool_call_applied_again_returns_its_first_result_and_changes_nothing(redis: Redis) -> None:
    """A replayed call (same tool_use_id) gets the recorded result, even computed from a stale snapshot."""
    store = make_store(redis)
    before = await store.snapshot(SCOPE)
    await store.commit(SCOPE, before, MemoryChange({"/memories/a.md": "one"}, "created"), "toolu_1")
    again = await store.commit(SCOPE, before, MemoryChange({"/memories/a.md": "other"}, "different"), "toolu_1")
    assert again is not None and again.repeated and again.result == "created"
    assert (await store.snapshot(SCOPE)).files == {"/memories/a.md": "one"}
    assert await store.applied(SCOPE, "toolu_1") == "created"
    assert await store.applied(SCOPE, "toolu_2") is None


async def test_a_change_computed_from_an_old_version_is_refused(redis: Redis) -> None:
    """Two agents writing at once: the second, computed before the first landed, is refused, not lost silently."""
    store = make_store(redis)
    before = await store.snapshot(SCOPE)
    assert await store.commit(SCOPE, before, MemoryChange({"/memories/a.md": "1"}, "ok"), "toolu_1") is not None
    assert await store.commit(SCOPE, before, MemoryChange({"/memories/b.md": "2"}, "ok"), "toolu_2") is None
    assert (await store.snapshot(SCOPE)).files == {"/memories/a.md": "1"}
    assert await store.applied(SCOPE, "toolu_2") is None


async def test_the_caps_refuse_growth_past_them_but_not_shrinking(redis: Redis) -> None:
    """Past MEMORY_MAX_BYTES or MEMORY_MAX_FILES a change that grows the memory is refused; a shrinking one is not."""
    store = make_store(redis, MemoryLimits(max_bytes=10, max_files=2))
    before = await store.snapshot(SCOPE)
    with pytest.raises(MemoryFull, match="may hold 10"):
        await store.commit(SCOPE, before, MemoryChange({"/memories/a": "x" * 11}, "ok"), "t1")
    with pytest.raises(MemoryFull, match="2 files"):
        await store.commit(
            SCOPE, before, MemoryChange(dict.fromkeys(["/memories/a", "/memories/b", "/memories/c"], "x"), "ok"), "t2"
        )
    assert (await store.snapshot(SCOPE)).files == {}
    await redis.hset(keys.memory_files(SCOPE), mapping={"f:/memories/big": "é" * 20, "version": "3"})  # over the cap
    big = await store.snapshot(SCOPE)
    assert big.total_bytes == 40
    assert await store.commit(SCOPE, big, MemoryChange({"/memories/big": "é" * 15}, "ok"), "t3") is not None


async def test_scopes_are_apart_and_clear_and_remove_work_per_scope(redis: Redis) -> None:
    """One channel's files are not another's; clear empties one scope, remove takes a file or a whole folder."""
    store = make_store(redis)
    files = {"/memories/a.md": "1", "/memories/team/x.md": "2", "/memories/team/y.md": "3"}
    await store.commit(SCOPE, await store.snapshot(SCOPE), MemoryChange(dict(files), "ok"), "t1")
    await store.commit("T1:C2", await store.snapshot("T1:C2"), MemoryChange({"/memories/z.md": "9"}, "ok"), "t1")
    assert (await store.snapshot("T1:C2")).files == {"/memories/z.md": "9"}
    assert await store.remove(SCOPE, "/memories/team") == 2
    assert await store.remove(SCOPE, "/memories/nothing") == 0
    assert (await store.snapshot(SCOPE)).files == {"/memories/a.md": "1"}
    assert await store.clear(SCOPE) == 1
    assert (await store.snapshot(SCOPE)).files == {}
    assert (await store.snapshot("T1:C2")).files == {"/memories/z.md": "9"}


def test_the_keys_of_a_scope_share_one_slot_and_belong_to_its_team() -> None:
    """A scope's files and its applied records hash to one slot (one script), under the team's prefix."""
    from redis.crc import key_slot

    files, applied = keys.memory_files(SCOPE), keys.memory_applied(SCOPE, "toolu_1")
    assert files.startswith("agent:T1:") and applied.startswith("agent:T1:")
    assert key_slot(files.encode()) == key_slot(applied.encode())


async def test_the_uninstall_sweep_deletes_a_team_s_memories_and_no_one_else_s(redis: Redis) -> None:
    """Once a workspace's grace period is over its channels' memories go with the rest of its data."""
    from store.leaving import Departures

    store = make_store(redis)
    for scope in (SCOPE, "T2:C1"):
        await store.commit(scope, await store.snapshot(scope), MemoryChange({"/memories/a": "x"}, "ok"), "toolu_1")
    departures = Departures(redis, keys.KeySpace(), grace_seconds=0)
    await departures.mark_left("T1", at=0)
    await departures.delete_team_data("T1")
    assert not await redis.exists(keys.memory_files(SCOPE), keys.memory_applied(SCOPE, "toolu_1"))
    assert (await store.snapshot("T2:C1")).files == {"/memories/a": "x"}


async def test_an_agent_reading_the_memory_keeps_it_alive(redis: Redis) -> None:
    """A touching read restarts the TTL; a plain read (an admin's listing) does not; neither creates the key."""
    store = make_store(redis)
    await store.snapshot(SCOPE, touch=True)
    assert not await redis.exists(keys.memory_files(SCOPE))
    await store.commit(SCOPE, await store.snapshot(SCOPE), MemoryChange({"/memories/a": "x"}, "ok"), None)
    await redis.pexpire(keys.memory_files(SCOPE), 1000)
    await store.snapshot(SCOPE)
    assert await redis.pttl(keys.memory_files(SCOPE)) <= 1000
    await store.snapshot(SCOPE, touch=True)
    assert await redis.pttl(keys.memory_files(SCOPE)) > 1000
