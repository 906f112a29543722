"""Channels' configurations against a real Redis: versioned saves, conflicts, and stored records that do not parse."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from store import keys
from store.channel_config import MAX_INSTRUCTIONS_CHARS, ChannelConfig, ChannelConfigStore, ConfigConflict


async def test_a_channel_without_a_configuration_has_the_defaults(redis: Redis) -> None:
    """Nothing stored: no instructions, the default model and tools, version 0."""
    config = await ChannelConfigStore(redis).get("T1", "C1")
    assert config == ChannelConfig() and config.is_default and config.version == 0


async def test_each_save_raises_the_version_and_is_read_back(redis: Redis) -> None:
    """A save from the current version stores the values (stripped) with the next version, who and when."""
    store = ChannelConfigStore(redis)
    first = await store.save(
        "T1", "C1", instructions="  Be brief.  ", model="m1", tools=("web_search",), by="U1", from_version=0, now=5.0
    )
    assert (first.version, first.instructions, first.tools) == (1, "Be brief.", ("web_search",))
    assert await store.get("T1", "C1") == first
    second = await store.save("T1", "C1", instructions="", model="", tools=None, by="U2", from_version=1, now=6.0)
    read = await store.get("T1", "C1")
    assert read == second and (read.version, read.updated_by, read.updated_at, read.tools) == (2, "U2", 6.0, None)
    assert await redis.ttl(keys.channel_config("T1", "C1")) == -1, "an admin's choice lasts until changed"
    assert await store.get("T1", "C2") == ChannelConfig() and await store.get("T2", "C1") == ChannelConfig()


async def test_a_save_from_an_older_version_is_refused_and_changes_nothing(redis: Redis) -> None:
    """Two admins editing at once: the second save, made from the version both started on, is a ConfigConflict."""
    store = ChannelConfigStore(redis)
    kept = await store.save("T1", "C1", instructions="A", model="", tools=None, by="U1", from_version=0)
    with pytest.raises(ConfigConflict):
        await store.save("T1", "C1", instructions="B", model="", tools=None, by="U2", from_version=0)
    with pytest.raises(ConfigConflict):
        await store.save("T1", "C1", instructions="B", model="", tools=None, by="U2", from_version=7)
    assert await store.get("T1", "C1") == kept


async def test_values_past_the_bounds_are_refused_before_anything_is_stored(redis: Redis) -> None:
    """Instructions over the most, a model with spaces, an empty tool name: ValueError, nothing stored."""
    store = ChannelConfigStore(redis)
    for instructions, model, tools in (
        ("x" * (MAX_INSTRUCTIONS_CHARS + 1), "", None),
        ("", "claude sonnet", None),
        ("", "", ("",)),
    ):
        with pytest.raises(ValueError):
            await store.save("T1", "C1", instructions=instructions, model=model, tools=tools, by="U1", from_version=0)
    assert not await redis.exists(keys.channel_config("T1", "C1"))


@pytest.mark.parametrize(
    ("raw", "expected", "problem"),
    [
        ("not json", ChannelConfig(), "not JSON"),
        ("[1, 2]", ChannelConfig(), "not an object"),
        (
            '{"version": 3, "instructions": "' + "y" * 3100 + '", "model": "a b", "tools": ["web_fetch", 7, ""]}',
            ChannelConfig(instructions="y" * MAX_INSTRUCTIONS_CHARS, tools=("web_fetch",), version=3),
            "instructions too long",
        ),
    ],
)
async def test_a_corrupt_record_is_read_as_far_as_it_parses_and_says_what_was_dropped(
    redis: Redis, raw: str, expected: ChannelConfig, problem: str
) -> None:
    """A record that is not JSON, not an object, or holds values out of bounds gives what is usable, and names the
    rest in `problems` rather than failing the channel's tasks."""
    await redis.set(keys.channel_config("T1", "C1"), raw)
    config = await ChannelConfigStore(redis).get("T1", "C1")
    assert config == expected
    assert any(problem in text for text in config.problems)


async def test_a_corrupt_record_can_be_overwritten_from_the_version_it_reads_as(redis: Redis) -> None:
    """A record whose version does not parse counts as version 0, so an admin can save over it."""
    await redis.set(keys.channel_config("T1", "C1"), '{"version": "x"}')
    store = ChannelConfigStore(redis)
    assert (await store.get("T1", "C1")).version == 0
    saved = await store.save("T1", "C1", instructions="ok", model="", tools=None, by="U1", from_version=0)
    assert saved.version == 1 and (await store.get("T1", "C1")).instructions == "ok"
