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
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore

from store.leaving import Departures

log = logging.getLogger(__name__)


class UninstallListeners:
    """What the app does when a workspace uninstalls it or revokes its tokens."""

    def __init__(self, departures: Departures, installation_store: AsyncInstallationStore | None) -> None:
        self._departures = departures
        # None in single-workspace mode: the one token comes from the settings, and there is no store to clean.
        self._revocations = AsyncTokenRevocationListeners(installation_store) if installation_store else None

    async def handle_app_uninstalled(self, context: AsyncBoltContext) -> None:
        """Refuse the team's tasks from now on, cancel its work silently, and forget its installation and bot."""
        team_id = context.team_id or context.enterprise_id
        if not team_id:
            log.warning("app_uninstalled names no workspace; ignored")
            return
        # Before the cancel: a task queued meanwhile is refused at start. Only in OAuth mode, where an install through
        # the bot clears the mark; in single-workspace mode a reinstall happens outside it (a new SLACK_BOT_TOKEN), so
        # a mark would refuse the workspace's tasks, and the sweep delete its agents, after it came back.
        if self._revocations is not None:
            await self._departures.mark_left(team_id)
        cancelled = await self._departures.cancel_team_work(team_id)
        if self._revocations is not None:
            await self._revocations.handle_app_uninstalled_events(context)
        log.info(
            "the app was uninstalled from %s: cancelled %d task(s) in %d thread(s)",
            team_id,
            cancelled.tasks,
            cancelled.threads,
        )

    async def handle_tokens_revoked(self, event: dict[str, object], context: AsyncBoltContext) -> None:
        """Forget the bot (if its token is listed) and the installations of the users listed."""
        if self._revocations is not None:
            await self._revocations.handle_tokens_revoked_events(event, context)
        log.info("tokens revoked in %s", context.team_id or context.enterprise_id)


def register_uninstall_listeners(bolt: AsyncApp, listeners: UninstallListeners) -> None:
    """Listen for the workspace uninstalling the app or revoking its tokens."""
    bolt.event("app_uninstalled")(listeners.handle_app_uninstalled)
    bolt.event("tokens_revoked")(listeners.handle_tokens_revoked)
