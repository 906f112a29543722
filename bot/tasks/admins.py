"""Who may administer the bot, and who may reset or stop a thread's agent.

The bot's admins are the people ADMIN_USER_IDS lists and, unless WORKSPACE_ADMINS_ARE_ADMINS is false, the
workspace's admins and owners as Slack's users.info says (its is_admin, is_owner and is_primary_owner flags). That
answer is cached in Redis for ADMIN_ROLE_TTL, so that a busy channel's commands do not ask Slack again each time,
and a demoted admin loses the rights within minutes. Admins alone reset a whole channel and change the limits; a
thread's agent may also be reset or stopped by the person who started the thread or anyone who wrote in it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from store.admin_roles import AdminRoleCache
from store.models import ThreadRef

log = logging.getLogger(__name__)

# The newest messages of a thread read to find whether a person wrote in it (one conversations.replies page).
PARTICIPANT_MESSAGES = 200
# How long the read of who wrote in a thread may take: it runs before the ack of an `@bot stop` or `reset`.
PARTICIPANT_READ_SECONDS = 1.5


class WorkspaceRoles(Protocol):
    """Slack's word on a person's role (handlers/gateway.py implements it with users.info)."""

    async def is_workspace_admin(self, team_id: str, user_id: str) -> bool | None:
        """Whether the person is an admin or owner of the workspace; None when Slack will not say."""
        ...


class Admins:
    """Decides who may administer the bot and act on a thread's agent."""

    def __init__(
        self,
        cache: AdminRoleCache,
        roles: WorkspaceRoles,
        slack: SlackGateway,
        *,
        admin_ids: frozenset[str],
        workspace_admins: bool,
    ) -> None:
        self._cache = cache
        self._roles = roles
        self._slack = slack
        self.admin_ids = admin_ids
        self.workspace_admins = workspace_admins

    async def is_admin(self, team_id: str, user_id: str) -> bool:
        """Whether the person is one of the bot's admins."""
        if user_id in self.admin_ids:
            return True
        if not self.workspace_admins:
            return False
        cached = await self._cache.get(team_id, user_id)
        if cached is not None:
            return cached
        role = await self._roles.is_workspace_admin(team_id, user_id)
        if role is None:
            return False  # not cached: Slack may answer next time
        await self._cache.put(team_id, user_id, role)
        return role

    async def may_act_on_thread(self, thread: ThreadRef, user_id: str, *, before_ts: str | None = None) -> bool:
        """Whether the person may reset or stop the thread's agent: an admin, or someone who started the thread or
        wrote in it (before `before_ts`: the message asking does not count)."""
        if await self.is_admin(thread.team_id, user_id):
            return True
        if thread.channel_id.startswith("D"):
            return True  # a DM is between the person and the bot
        try:
            # Bounded: a mention's check runs before Slack's acknowledgement, which Slack waits 3 s for.
            tail = await asyncio.wait_for(
                self._slack.recent_messages(thread, limit=PARTICIPANT_MESSAGES, before_ts=before_ts),
                PARTICIPANT_READ_SECONDS,
            )
        except (SlackError, TimeoutError) as exc:
            log.warning("cannot read thread %s to see who wrote in it: %s", thread.encode(), exc or "timed out")
            return False
        return any(message.user_id == user_id for message in tail.messages)

    def who_may(self, what: str, *, thread: bool = False) -> str:
        """A refusal that says who may do `what`."""
        people = [f"<@{user_id}>" for user_id in sorted(self.admin_ids)]
        if self.workspace_admins:
            people.append("the workspace's admins and owners")
        if thread:
            people.append("the people who started or wrote in the thread")
        if not people:
            return f"Nobody may {what}: no admins are set (ADMIN_USER_IDS)."
        listed = " and ".join(people) if len(people) <= 2 else ", ".join(people[:-1]) + ", and " + people[-1]
        return f"Only {listed} may {what}."
