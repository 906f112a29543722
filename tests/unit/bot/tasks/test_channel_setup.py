"""The setup a task runs with: its channel's configuration over the deployment's defaults, journaled and kept."""

from __future__ import annotations

import json
import time

import pytest
from redis.asyncio import Redis

from bot.agent.setup import INSTRUCTIONS_HEADING, AgentSetup, for_model, journaled_setup, with_setup
from bot.agent.steps import loop_steps, parse_steps
from bot.tasks.channel_setup import ChannelSetups
from store import keys
from store.channel_config import MAX_INSTRUCTIONS_CHARS, ChannelConfig, ChannelConfigStore, ConfigConflict
from store.errors import CorruptRecord
from store.models import Task, TaskKind, ThreadRef

OFFERED = ("memory", "search_slack", "web_search", "code_execution", "mcp:wiki")
DEFAULTS = ("memory", "search_slack", "web_search")


def task_in(channel: str, team: str = "T1") -> Task:
    return Task("t1", TaskKind.ANSWER, ThreadRef(team, channel, "1700000000.000100"), "hi", "U1", "1.0", time.time())


@pytest.fixture
def setups(redis: Redis) -> ChannelSetups:
    return ChannelSetups(ChannelConfigStore(redis), OFFERED, DEFAULTS, models=("claude-haiku-4-5",))


async def test_a_channel_that_chose_nothing_gets_the_defaults_and_its_own_memory(setups: ChannelSetups) -> None:
    setup = await setups.for_task(task_in("C1"))
    assert setup == AgentSetup("", "", DEFAULTS, 0, "T1:C1")
    assert setup.system_prompt("Base.").startswith("Base.\n\nYour memory directory (/memories) belongs to this Slack")


async def test_a_dm_gets_the_defaults_without_memory_whatever_is_stored(redis: Redis, setups: ChannelSetups) -> None:
    """Nothing a channel learned reaches a DM: a DM has no memory scope and no memory tool."""
    configs = ChannelConfigStore(redis)
    await configs.save("T1", "D1", instructions="pirate talk", model="", tools=OFFERED, by="U1", from_version=0)
    setup = await setups.for_task(task_in("D1"))
    assert setup.scope == "" and "memory" not in setup.tools
    assert setup.instructions == "" and setup.tools == ("search_slack", "web_search")


async def test_a_configured_channel_gets_its_choice_in_the_offers_order_and_only_what_is_offered(
    redis: Redis, setups: ChannelSetups
) -> None:
    configs = ChannelConfigStore(redis)
    chosen = ("mcp:wiki", "retired_tool", "web_search")
    saved = await configs.save(
        "T1", "C1", instructions="Answer in French.", model="claude-haiku-4-5", tools=chosen, by="U1", from_version=0
    )
    setup = await setups.for_task(task_in("C1"))
    assert setup.tools == ("web_search", "mcp:wiki")  # the retired tool is dropped; no memory: not chosen
    assert setup.scope == "" and setup.model == "claude-haiku-4-5" and setup.version == saved.version == 1
    assert setup.system_prompt("Base.") == f"Base.\n\n{INSTRUCTIONS_HEADING}\nAnswer in French."
    assert (await setups.for_task(task_in("C2"))).instructions == ""  # another channel: untouched


async def test_a_change_from_a_stale_version_is_refused_and_changes_nothing(redis: Redis) -> None:
    configs = ChannelConfigStore(redis)
    await configs.save("T1", "C1", instructions="one", model="", tools=None, by="U1", from_version=0)
    with pytest.raises(ConfigConflict):
        await configs.save("T1", "C1", instructions="two", model="", tools=None, by="U2", from_version=0)
    stored = await configs.get("T1", "C1")
    assert (stored.instructions, stored.version, stored.updated_by) == ("one", 1, "U1")


async def test_a_stored_record_that_does_not_parse_falls_back_to_the_defaults_and_says_why(redis: Redis) -> None:
    await redis.set(keys.channel_config("T1", "C1"), json.dumps({"instructions": 5, "model": "a b", "tools": "x"}))
    stored = await ChannelConfigStore(redis).get("T1", "C1")
    assert stored.is_default and stored.problems == ("model not valid",)
    await redis.set(keys.channel_config("T1", "C2"), "{not json")
    assert (await ChannelConfigStore(redis).get("T1", "C2")).problems


def test_a_setup_is_journaled_as_a_step_that_the_tool_loop_skips() -> None:
    setup = AgentSetup("Be brief.", "claude-opus-4-5", ("web_search",), 3, "T1:C1")
    record = setup.to_record()
    assert journaled_setup([record]) == setup
    assert parse_steps([record]) == [setup] and loop_steps(parse_steps([record])) == []
    with pytest.raises(CorruptRecord):
        AgentSetup.from_record({**record, "tools": "web_search"})


def test_bad_values_from_a_form_get_a_clear_error() -> None:
    with pytest.raises(ValueError, match="characters"):
        ChannelConfig(instructions="x" * (MAX_INSTRUCTIONS_CHARS + 1))
    with pytest.raises(ValueError, match="model"):
        ChannelConfig(model="claude sonnet")


async def test_a_channel_that_turns_every_tool_off_keeps_none(redis: Redis, setups: ChannelSetups) -> None:
    """An empty choice is a choice: it must not read back as "the defaults" (Lua's cjson writes [] as {})."""
    saved = await ChannelConfigStore(redis).save(
        "T1", "C1", instructions="", model="", tools=(), by="U1", from_version=0, now=1764800000.123456
    )
    stored = await ChannelConfigStore(redis).get("T1", "C1")
    assert stored == saved and stored.tools == () and stored.updated_at == 1764800000.123456
    assert (await setups.for_task(task_in("C1"))).tools == ()


async def test_a_dm_also_has_the_tools_only_its_asker_should_read(redis: Redis) -> None:
    """search_slack is off by default in channels (the whole channel reads its results) and on in a DM."""
    setups = ChannelSetups(ChannelConfigStore(redis), OFFERED, ("web_search",), dm_extras=("search_slack",))
    assert (await setups.for_task(task_in("C1"))).tools == ("web_search",)
    assert (await setups.for_task(task_in("D1"))).tools == ("search_slack", "web_search")


def configured(redis: Redis) -> ChannelSetups:
    return ChannelSetups(
        ChannelConfigStore(redis), ["web_search", "memory", "web_fetch"], ["web_fetch"], models=["claude-big"]
    )


async def test_a_model_the_deployment_no_longer_offers_gives_way_to_the_default(redis: Redis) -> None:
    """A channel's model is used while CHANNEL_MODELS lists it; once it does not, the task gets ANTHROPIC_MODEL."""
    offered = configured(redis).setup_of(ChannelConfig(model="claude-big"), "T1", "C1")
    dropped = configured(redis).setup_of(ChannelConfig(model="claude-gone"), "T1", "C1")
    assert (offered.model, dropped.model) == ("claude-big", "")


async def test_tools_follow_the_offer_and_its_order_and_a_dm_gets_the_defaults(redis: Redis) -> None:
    """Chosen tools in the offer's order, unknown ones dropped; None = the defaults; a DM reads no configuration."""
    chosen = configured(redis).setup_of(ChannelConfig(tools=("web_fetch", "gone", "web_search")), "T1", "C1")
    assert chosen.tools == ("web_search", "web_fetch")
    assert configured(redis).setup_of(ChannelConfig(), "T1", "C1").tools == ("web_fetch",)
    await ChannelConfigStore(redis).save(
        "T1", "D1", instructions="never", model="", tools=None, by="U1", from_version=0
    )
    assert await configured(redis).config("T1", "D1") == ChannelConfig()


def test_a_model_that_predates_the_memory_tool_runs_without_it() -> None:
    """The API takes the memory tool from Claude 4 on: a channel's older model gets neither the tool nor the note."""
    setup = AgentSetup("", "", ("memory", "web_search"), 1, "T1:C1")
    assert for_model(setup, "claude-sonnet-4-5") == setup and for_model(setup, "some-proxy-alias") == setup
    older = for_model(setup, "claude-3-5-haiku-20241022")
    assert older.tools == ("web_search",) and older.scope == "" and "memories" not in older.system_prompt("Base.")


def test_a_setup_journaled_with_the_first_model_call_is_found_and_the_loop_reads_the_call() -> None:
    """The setup rides on the task's first model step (one write for both); the loop still sees a model step."""
    setup = AgentSetup("Be brief.", "", ("web_search",), 2, "T1:C1", "adaptive")
    model = {"kind": "model", "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "usage": {}}
    record = with_setup(model, setup)
    assert journaled_setup([record]) == setup and journaled_setup([model]) is None
    assert [type(step).__name__ for step in loop_steps(parse_steps([record]))] == ["ModelStep"]
    with pytest.raises(CorruptRecord):
        journaled_setup([{**model, "setup": "nope"}])
