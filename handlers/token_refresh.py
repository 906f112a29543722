"""Refreshing a workspace's expiring bot token (the app's token rotation on), once across all processes.

Slack's refresh token is single use: a per-workspace Redis lock lets one process refresh and save the new bot
through the installation store; the others wait for it there. Incoming requests (handlers/workspace_auth.py) and
tasks find their bots through the same TeamBots, so every refresh of every process goes through here.

A refresh starts two hours before the token expires, so a failed one costs nothing yet: the current token is used
while it lasts, and the refresh is tried again a minute later (not on every call). The call itself is made once,
never retried by the client: a retry after Slack took the refresh token would spend it for nothing and lose the
new token (see bot/runtime/workspaces.py, which gives the rotator a client without retries and a short timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator

from bot.core.errors import SlackError
from store.refresh_locks import RefreshLocks

log = logging.getLogger(__name__)

# Bolt's own margin (AsyncOAuthSettings.token_rotation_expiration_minutes): a token with less left is refreshed.
MINUTES_BEFORE_EXPIRATION = 120
# oauth.v2.access answers in well under a second, and the rotator's client gives up after REFRESH_TIMEOUT_SECONDS:
# the lock outlives the call, and one held by a process that died frees itself soon.
LOCK_MS = 15_000
REFRESH_TIMEOUT_SECONDS = 10
# After a failed refresh of a token that still works: when to try again.
RETRY_AFTER_FAILURE_SECONDS = 60.0
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
        self._retry_at: dict[str, float] = {}  # owners whose last refresh failed: not before then

    def refresh_at(self, bot: Bot, owner_id: str = "") -> float | None:
        """When the bot's token is due for a refresh: the margin before it expires, or after a failed refresh the
        time to try again (None: it does not rotate)."""
        expires_at = bot.bot_token_expires_at
        if expires_at is None:
            return None
        return max(expires_at - self._minutes * 60, self._retry_at.get(owner_id, 0.0))

    def expiring(self, bot: Bot, owner_id: str = "") -> bool:
        """Whether the bot's token is due for a refresh now (never, without token rotation)."""
        refresh_at = self.refresh_at(bot, owner_id)
        return refresh_at is not None and refresh_at <= self._clock()

    async def fresh(self, owner_id: str, bot: Bot, *, expired: bool = False) -> Bot:
        """`bot`, or the bot with its refreshed token (saved in the store) if its token is due for a refresh, or
        `expired` (Slack said so, whatever our clock says). `owner_id` is whose install it is: a team's id, or an
        enterprise id for an org-wide install."""
        due = expired and bot.bot_refresh_token is not None
        if not due and not self.expiring(bot, owner_id):
            return bot
        holder = await self._locks.acquire(owner_id, LOCK_MS)
        if holder is None:
            return await self._refreshed_elsewhere(owner_id, bot)
        try:
            latest = await self._latest(owner_id) or bot
            if latest.bot_token != bot.bot_token or not (due or self.expiring(latest, owner_id)):
                return latest  # another process refreshed it between our read and our lock
            return await self._refresh(owner_id, latest, force=due)
        finally:
            await self._locks.release(owner_id, holder)

    async def _refresh(self, owner_id: str, bot: Bot, *, force: bool) -> Bot:
        # The rotator refreshes only a token within `minutes_before_expiration` of its expiry: a forced refresh
        # widens that to any token.
        minutes = FORCE_MINUTES if force else self._minutes
        try:
            refreshed = await self._rotator.perform_bot_token_rotation(bot=bot, minutes_before_expiration=minutes)
        except SlackTokenRotationError as exc:
            reason = str(exc.api_error.response.get("error", "unknown error"))
        except SlackApiError as exc:  # the rotator's client answers some failures itself (a 429, a 5xx)
            reason = str(exc.response.get("error", "unknown error"))
        except (ClientError, TimeoutError) as exc:
            reason = f"unreachable ({type(exc).__name__})"
        else:
            reason = ""
        if reason:
            # A process whose lock ran out during a slow refresh may have spent the refresh token and saved the new bot.
            latest = await self._latest(owner_id)
            if latest is not None and latest.bot_token != bot.bot_token:
                return latest
            return self._failed(owner_id, bot, reason, force)
        self._retry_at.pop(owner_id, None)
        if refreshed is None:
            return bot
        await self._store.async_save_bot(refreshed)
        log.info("workspace %s: bot token refreshed", owner_id)
        return refreshed

    def _failed(self, owner_id: str, bot: Bot, reason: str, force: bool) -> Bot:
        """After a failed refresh: the current bot while its token works (tried again a minute later), else
        SlackError."""
        expires_at = bot.bot_token_expires_at or 0
        if force or expires_at <= self._clock():
            raise SlackError(f"workspace {owner_id}: bot token refresh failed: {reason}", reason)
        self._retry_at[owner_id] = self._clock() + RETRY_AFTER_FAILURE_SECONDS
        log.warning(
            "workspace %s: bot token refresh failed (%s); its token works for %d more minutes, trying again in %d s",
            owner_id,
            reason,
            (expires_at - self._clock()) // 60,
            RETRY_AFTER_FAILURE_SECONDS,
        )
        return bot

    async def _latest(self, owner_id: str) -> Bot | None:
        # The store keys a team's install and an org's alike by the owner's id, so an enterprise id finds the org's.
        return await self._store.async_find_bot(enterprise_id=None, team_id=owner_id)

    async def _refreshed_elsewhere(self, owner_id: str, bot: Bot) -> Bot:
        """The bot another process is refreshing: read again until its token changes or the lock is let go (a
        failed refresh: the old token is used while it lasts, and the next lookup tries again)."""
        deadline = time.monotonic() + LOCK_MS / 1000
        while time.monotonic() < deadline:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            released = not await self._locks.held(owner_id)
            latest = await self._latest(owner_id)  # read after the check: a save comes before the release
            if latest is not None and latest.bot_token != bot.bot_token:
                return latest
            if released:
                return latest or bot
        return bot
