"""Refreshing a workspace's expiring bot token (the app's token rotation on), once across all processes.

Slack's refresh token is single use: a per-workspace Redis lock lets one process refresh and save the new bot
through the installation store; the others wait for it there. Bolt refreshes the same way on incoming requests
(its authorize); both read and save the same store, and the lock keeps the worker processes from racing each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator

from bot.core.errors import SlackError
from store.refresh_locks import RefreshLocks

log = logging.getLogger(__name__)

# Bolt's own margin (AsyncOAuthSettings.token_rotation_expiration_minutes): a token with less left is refreshed.
MINUTES_BEFORE_EXPIRATION = 120
# oauth.v2.access answers in well under a second; the lock outlives a slow one, and one that died frees it soon.
LOCK_MS = 10_000
# A year: wider than any token's lifetime (Slack's live twelve hours).
FORCE_MINUTES = 365 * 24 * 60
WAIT_POLL_SECONDS = 0.05


class TokenRefresher:
    """Gives a stored bot back with a token that is not about to expire, refreshing it under the workspace's lock."""

    def __init__(
        self,
        rotator: AsyncTokenRotator,
        store: AsyncInstallationStore,
        locks: RefreshLocks,
        *,
        minutes_before_expiration: int = MINUTES_BEFORE_EXPIRATION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rotator = rotator
        self._store = store
        self._locks = locks
        self._minutes = minutes_before_expiration
        self._clock = clock

    def refresh_at(self, bot: Bot) -> float | None:
        """When the bot's token is due for a refresh: the margin before it expires (None: it does not rotate)."""
        expires_at = bot.bot_token_expires_at
        return None if expires_at is None else expires_at - self._minutes * 60

    def expiring(self, bot: Bot) -> bool:
        """Whether the bot's token expires within the margin (never, without token rotation)."""
        refresh_at = self.refresh_at(bot)
        return refresh_at is not None and refresh_at <= self._clock()

    async def fresh(self, team_id: str, bot: Bot, *, expired: bool = False) -> Bot:
        """`bot`, or the bot with its refreshed token (saved in the store) if its token is about to expire, or
        `expired` (Slack said so, whatever our clock says). `team_id` is whose install it is: a team's id, or an
        enterprise id for an org-wide install."""
        due = expired and bot.bot_refresh_token is not None
        if not due and not self.expiring(bot):
            return bot
        holder = await self._locks.acquire(team_id, LOCK_MS)
        if holder is None:
            return await self._refreshed_elsewhere(team_id, bot)
        try:
            latest = await self._latest(team_id) or bot
            if latest.bot_token != bot.bot_token or not (due or self.expiring(latest)):
                return latest  # another process refreshed it between our read and our lock
            return await self._refresh(team_id, latest, force=due)
        finally:
            await self._locks.release(team_id, holder)

    async def _refresh(self, team_id: str, bot: Bot, *, force: bool = False) -> Bot:
        # The rotator refreshes only a token within `minutes_before_expiration` of its expiry: a forced refresh
        # widens that to any token.
        minutes = FORCE_MINUTES if force else self._minutes
        try:
            refreshed = await self._rotator.perform_bot_token_rotation(bot=bot, minutes_before_expiration=minutes)
        except SlackTokenRotationError as exc:
            code = str(exc.api_error.response.get("error", "unknown error"))
            # Bolt's authorize refreshes on incoming events without our lock: it may have spent the refresh token
            # just now, and saved the new bot.
            latest = await self._latest(team_id)
            if latest is not None and latest.bot_token != bot.bot_token:
                return latest
            raise SlackError(f"workspace {team_id}: bot token refresh failed: {code}", code) from None
        if refreshed is None:
            return bot
        await self._store.async_save_bot(refreshed)
        log.info("workspace %s: bot token refreshed", team_id)
        return refreshed

    async def _latest(self, owner_id: str) -> Bot | None:
        # The store keys a team's install and an org's alike by the owner's id, so an enterprise id finds the org's.
        return await self._store.async_find_bot(enterprise_id=None, team_id=owner_id)

    async def _refreshed_elsewhere(self, team_id: str, bot: Bot) -> Bot:
        """The bot another process is refreshing: read again until its token changes or the lock is let go (a
        failed refresh: the old token is used while it lasts, and the next lookup tries again)."""
        deadline = time.monotonic() + LOCK_MS / 1000
        while time.monotonic() < deadline:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            latest = await self._latest(team_id)
            if latest is not None and latest.bot_token != bot.bot_token:
                return latest
            if not await self._locks.held(team_id):
                return latest or bot
        return bot
