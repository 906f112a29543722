"""The setup a task runs with: its channel's configuration (`/agent config`) over the deployment's defaults.

What a channel may choose is bounded by what the deployment offers: a tool the channel allowed that the deployment
no longer offers is dropped, and a model no longer in CHANNEL_MODELS gives way to ANTHROPIC_MODEL. A DM has
no channel configuration (its person talks to the defaults, plus the tools whose results only the asker should
read, such as search_slack) and no memory, so nothing a channel's agents learned reaches a DM.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.agent.setup import MEMORY_TOOL, AgentSetup
from store.channel_config import ChannelConfig, ChannelConfigStore
from store.models import Task

log = logging.getLogger(__name__)


def is_dm(channel_id: str) -> bool:
    """Whether a conversation is a direct message (Slack's ids: D for a DM)."""
    return channel_id.startswith("D")


def memory_scope(team_id: str, channel_id: str) -> str:
    """Whose memory a channel's agents share: the channel's, within its workspace ("" in a DM: none)."""
    return "" if is_dm(channel_id) else f"{team_id}:{channel_id}"


class ChannelSetups:
    """Turns a channel's stored configuration into the setup of its next task."""

    def __init__(
        self,
        configs: ChannelConfigStore,
        offered: Sequence[str],
        defaults: Sequence[str],
        *,
        dm_extras: Sequence[str] = (),
        models: Sequence[str] = (),
    ) -> None:
        self._configs = configs
        self._offered = tuple(offered)
        self._defaults = tuple(name for name in defaults if name in offered)
        # Tools a DM has besides the defaults: those whose results only the asker should read.
        self._dm_extras = tuple(name for name in dm_extras if name in offered)
        self._models = tuple(models)

    @property
    def models(self) -> tuple[str, ...]:
        """The models a channel may pick instead of the deployment's (CHANNEL_MODELS)."""
        return self._models

    @property
    def offered(self) -> tuple[str, ...]:
        """Every tool a channel may allow."""
        return self._offered

    @property
    def defaults(self) -> tuple[str, ...]:
        """The tools of a channel that chose none."""
        return self._defaults

    async def config(self, team_id: str, channel_id: str) -> ChannelConfig:
        """The channel's configuration (the defaults in a DM)."""
        if is_dm(channel_id):
            return ChannelConfig()
        return await self._configs.get(team_id, channel_id)

    async def for_task(self, task: Task) -> AgentSetup:
        """The setup of a task starting now."""
        ref = task.thread
        config = await self.config(ref.team_id, ref.channel_id)
        if config.problems:
            log.warning(
                "channel %s: stored configuration partly ignored (%s)", ref.channel_id, "; ".join(config.problems)
            )
        return self.setup_of(config, ref.team_id, ref.channel_id)

    def setup_of(self, config: ChannelConfig, team_id: str, channel_id: str) -> AgentSetup:
        """The setup a configuration gives a task of this channel."""
        chosen = config.tools if config.tools is not None else self._defaults
        if is_dm(channel_id):
            chosen = (*chosen, *self._dm_extras)
        tools = tuple(name for name in self._offered if name in chosen)  # the offer's order: a stable prefix
        scope = memory_scope(team_id, channel_id) if MEMORY_TOOL in tools else ""
        if not scope:
            tools = tuple(name for name in tools if name != MEMORY_TOOL)
        model = config.model if config.model in self._models else ""  # "" = ANTHROPIC_MODEL
        return AgentSetup(config.instructions, model, tools, config.version, scope)
