"""Leaving cleanly: the `app_uninstalled` and `tokens_revoked` events.

Bolt answers these two events without authorizing them (their tokens are already revoked), and its own
AsyncTokenRevocationListeners delete what the installation store holds; these listeners run Bolt's, and on an
uninstall first stop the workspace's work: the team is marked as left (its tasks are refused from then on), then its
queued and running tasks are cancelled without posting anything (Slack would refuse the posts anyway). Its agents'
data is kept for UNINSTALL_GRACE_DAYS, in case it installs the app again, then the worker's sweep deletes it. In
single-workspace mode only the cancel is done (see handle_app_uninstalled).

Slack may send the events in either order, and again if we do not answer in time: every step here is safe to repeat.
"""

from __future__ import annotations

import logging

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.listener.async_builtins import AsyncTokenRevocationListeners

from handlers.installation_store import RedisInstallationStore
from handlers.team_bots import TeamBots
from handlers.workspace_auth import owner_id
from store.leaving import Departures

log = logging.getLogger(__name__)


class UninstallListeners:
    """What the app does when a workspace uninstalls it or revokes its tokens."""

    def __init__(
        self, departures: Departures, bots: TeamBots, installations: RedisInstallationStore | None = None
    ) -> None:
        self._departures = departures
        self._bots = bots
        self._installations = installations
        # None in single-workspace mode: the one token comes from the settings, and there is no store to clean.
        self._revocations = AsyncTokenRevocationListeners(installations) if installations else None

    async def handle_app_uninstalled(self, context: AsyncBoltContext) -> None:
        """Refuse the team's tasks from now on, cancel its work silently, and forget its installation and bot. An
        org-wide install's uninstall does so for every team of the org seen using it."""
        owner = owner_id(context) or context.enterprise_id
        if not owner:
            log.warning("app_uninstalled names no workspace; ignored")
            return
        teams = [owner]
        if owner == context.enterprise_id and self._installations is not None:
            teams += await self._installations.org_teams(owner)
        # Before the cancel: a task queued meanwhile is refused at start. Only in OAuth mode, where an install through
        # the bot clears the mark; in single-workspace mode a reinstall happens outside it (a new SLACK_BOT_TOKEN), so
        # a mark would refuse the workspace's tasks, and the sweep delete its agents, after it came back.
        if self._revocations is not None:
            for team_id in teams:
                await self._departures.mark_left(team_id)
        cancelled = await self._departures.cancel_team_work(*teams)
        if self._revocations is not None:
            await self._revocations.handle_app_uninstalled_events(context)
        self._bots.forget_workspace(owner)  # this process's copy; the others' calls are refused and ask again
        log.info(
            "the app was uninstalled from %s: cancelled %d task(s) in %d thread(s)",
            owner,
            cancelled.tasks,
            cancelled.threads,
        )

    async def handle_tokens_revoked(self, event: dict[str, object], context: AsyncBoltContext) -> None:
        """Forget the bot (if its token is listed) and the installations of the users listed."""
        if self._revocations is not None:
            await self._revocations.handle_tokens_revoked_events(event, context)
        owner = owner_id(context) or context.enterprise_id
        if owner:
            self._bots.forget_workspace(owner)
        log.info("tokens revoked in %s", owner)


def register_uninstall_listeners(bolt: AsyncApp, listeners: UninstallListeners) -> None:
    """Listen for the workspace uninstalling the app or revoking its tokens."""
    bolt.event("app_uninstalled")(listeners.handle_app_uninstalled)
    bolt.event("tokens_revoked")(listeners.handle_tokens_revoked)
