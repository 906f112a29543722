"""The bot of each workspace, for the calls made for its threads: the one token in single-workspace mode, each
team's token from the installation store in OAuth mode (kept here a short while, dropped when Slack refuses it)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.errors import SlackError
from handlers.token_refresh import TokenRefresher

# Slack's answers to a token that no longer works (revoked, the app uninstalled, the workspace gone, or rotated
# away by another process): the cached bot is dropped and the store asked again, once.
REFUSED_TOKEN = frozenset({"invalid_auth", "token_revoked", "token_expired", "account_inactive", "not_authed"})
# Long enough to spare the store a read per call of a busy answer, short enough that a reinstall (a new token, a
# new bot user) is seen within a minute without any signal between processes.
BOT_LIFETIME_SECONDS = 60.0
NOT_INSTALLED = "not_installed"


@dataclass(frozen=True)
class TeamBot:
    """A workspace's bot: a client carrying its token, and who it is (to tell its own messages; None: not asked)."""

    client: AsyncWebClient
    user_id: str | None
    bot_id: str | None
    found_at: float


class TeamBots:
    """Finds the bot of a team: the one client in single-workspace mode, the stored bot's token in OAuth mode."""

    def __init__(
        self,
        client: AsyncWebClient,
        store: AsyncInstallationStore | None = None,
        *,
        refresher: TokenRefresher | None = None,
        lifetime: float = BOT_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._store = store
        self._refresher = refresher
        self._lifetime = lifetime
        self._clock = clock
        self._bots: dict[str, TeamBot] = {}

    async def bot(self, team_id: str) -> TeamBot:
        """The team's bot, to call with; SlackError (not_installed) for a team with no bot installed."""
        key = self._key(team_id)
        cached = self._bots.get(key)
        if cached is not None and (self._store is None or self._clock() - cached.found_at < self._lifetime):
            return cached
        found = await self._find(team_id)
        self._bots[key] = found
        return found

    async def identified_bot(self, team_id: str) -> TeamBot:
        """The team's bot with its user id known: auth.test asked once for a bot that does not say (the single
        token's; a stored bot says)."""
        bot = await self.bot(team_id)
        if bot.user_id is not None:
            return bot
        data = await send("auth.test", bot.client.auth_test())
        identified = replace(bot, user_id=str(data.get("user_id", "")), bot_id=data.get("bot_id"))
        if self._bots.get(self._key(team_id)) is bot:
            self._bots[self._key(team_id)] = identified
        return identified

    def _key(self, team_id: str) -> str:
        return team_id if self._store is not None else ""  # one workspace: one bot, whatever team a thread names

    def forget(self, team_id: str, client: AsyncWebClient) -> bool:
        """Drop the bot of `client` after Slack refused its token; True when asking again may find another token."""
        if self._store is None:
            return False  # the one token is all there is
        cached = self._bots.get(team_id)
        if cached is not None and cached.client is client:  # not a newer one another call found meanwhile
            del self._bots[team_id]
        return True

    async def _find(self, team_id: str) -> TeamBot:
        if self._store is None:
            return TeamBot(self._client, None, None, self._clock())
        stored = await self._store.async_find_bot(enterprise_id=None, team_id=team_id)
        if stored is None or not stored.bot_token:
            raise SlackError(f"no bot installed in workspace {team_id}", NOT_INSTALLED)
        if self._refresher is not None:
            stored = await self._refresher.fresh(team_id, stored)
        client = _client_with_token(self._client, stored.bot_token)
        return TeamBot(client, stored.bot_user_id or None, stored.bot_id, self._clock())


async def send(method: str, call: Awaitable[AsyncSlackResponse]) -> dict[str, Any]:
    """Await a Web API call, turning Slack's errors into SlackError (never echoing tokens or bodies)."""
    try:
        response = await call
    except SlackApiError as exc:
        code = str(exc.response.get("error", "unknown error"))
        raise SlackError(f"Slack {method} failed: {code}", code) from None
    except (ClientError, TimeoutError) as exc:
        raise SlackError(f"Slack {method} unreachable: {type(exc).__name__}") from None
    data: dict[str, Any] = response.data if isinstance(response.data, dict) else {}
    return data


def _client_with_token(client: AsyncWebClient, token: str) -> AsyncWebClient:
    """A client like `client` (same URL, session, timeout and retry handlers) with `token`, as Bolt builds one per
    request from its own client."""
    return AsyncWebClient(
        token=token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        session=client.session,
        trust_env_in_session=client.trust_env_in_session,
        headers=dict(client.headers),  # a copy: the new client adds its User-Agent to it
        logger=client._logger,  # no public accessor; Bolt reads it the same way
        retry_handlers=client.retry_handlers.copy(),
    )
