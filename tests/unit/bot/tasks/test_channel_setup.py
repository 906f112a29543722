"""A channel's configuration as its next task's setup: bounded by what the deployment offers."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.tasks.channel_setup import ChannelSetups
from store.channel_config import ChannelConfig, ChannelConfigStore


def setups(redis: Redis) -> ChannelSetups:
    return ChannelSetups(
        ChannelConfigStore(redis), ["web_search", "memory", "web_fetch"], ["web_fetch"], models=["claude-big"]
    )


async def test_a_model_the_deployment_no_longer_offers_gives_way_to_the_default(redis: Redis) -> None:
    """A channel's model is used while CHANNEL_MODELS lists it; once it does not, the task gets ANTHROPIC_MODEL."""
    offered = setups(redis).setup_of(ChannelConfig(model="claude-big"), "T1", "C1")
    dropped = setups(redis).setup_of(ChannelConfig(model="claude-gone"), "T1", "C1")
    assert (offered.model, dropped.model) == ("claude-big", "")


async def test_tools_follow_the_offer_and_its_order_and_a_dm_gets_the_defaults(redis: Redis) -> None:
    """Chosen tools in the offer's order, unknown ones dropped; None = the defaults; a DM reads no configuration."""
    chosen = setups(redis).setup_of(ChannelConfig(tools=("web_fetch", "gone", "web_search")), "T1", "C1")
    assert chosen.tools == ("web_search", "web_fetch")
    assert setups(redis).setup_of(ChannelConfig(), "T1", "C1").tools == ("web_fetch",)
    await ChannelConfigStore(redis).save(
        "T1", "D1", instructions="never", model="", tools=None, by="U1", from_version=0
    )
    assert await setups(redis).config("T1", "D1") == ChannelConfig()
