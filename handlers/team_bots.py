"""The bot of each workspace, for the calls made for its threads: the one token in single-workspace mode, each
team's token from the installation store in OAuth mode (kept here a short while, dropped when Slack refuses it)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.errors import SlackError
from handlers.installation_store import RedisInstallationStore
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
    """A workspace's bot: a client carrying its token, and who it is (to tell its own messages; None: not asked).

    `owner_id` is whose install it is (the team's, or its org's for an org-wide install); `refresh_at` when its
    rotating token is due for a refresh (None: it does not rotate)."""

    client: AsyncWebClient
    user_id: str | None
    bot_id: str | None
    found_at: float  # monotonic
    owner_id: str = ""
    refresh_at: float | None = None  # wall-clock time, as token expiries are

    @property
    def token(self) -> str | None:
        """The bot token its calls carry."""
        return self.client.token


class TeamBots:
    """Finds the bot of a team: the one client in single-workspace mode, the stored bot's token in OAuth mode."""

    def __init__(
        self,
        client: AsyncWebClient,
        store: RedisInstallationStore | None = None,
        *,
        refresher: TokenRefresher | None = None,
        lifetime: float = BOT_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._store = store
        self._refresher = refresher
        self._lifetime = lifetime
        self._clock = clock
        self._wall_clock = wall_clock
        self._bots: dict[str, TeamBot] = {}
        # Teams this process recorded as served by an org-wide install: their org, and when (recorded again after a
        # lifetime, as another process may have dropped the link since: an uninstall, the grace period's sweep).
        self._org_of: dict[str, tuple[str, float]] = {}
        self._expired: dict[str, str] = {}  # tokens Slack called expired before our clock did, by team

    @property
    def multi_workspace(self) -> bool:
        """Whether each workspace has its own bot from the store (OAuth mode)."""
        return self._store is not None

    async def bot(self, team_id: str) -> TeamBot:
        """The team's bot, to call with; SlackError (not_installed) for a team with no bot installed. `team_id` may
        be an enterprise id, for the org-wide install's own bot."""
        key = self._key(team_id)
        cached = self._bots.get(key)
        if cached is not None and self._fresh(cached):
            return cached
        found = await self._find(team_id)
        self._bots[key] = found
        return found

    def _fresh(self, bot: TeamBot) -> bool:
        if self._store is None:
            return True
        # A rotating token due for a refresh is looked up (and refreshed) now, not when its minute in the cache ends.
        due = bot.refresh_at is not None and bot.refresh_at <= self._wall_clock()
        return self._clock() - bot.found_at < self._lifetime and not due

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

    async def join_org(self, team_id: str, enterprise_id: str) -> None:
        """Note that the org-wide install of `enterprise_id` serves `team_id` (recorded once per process), so that
        the team's tasks find the org's bot."""
        if self._store is None:
            return
        recorded = self._org_of.get(team_id)
        if recorded is not None and recorded[0] == enterprise_id and self._clock() - recorded[1] < self._lifetime:
            return
        await self._store.join_org(team_id, enterprise_id)
        self._org_of[team_id] = (enterprise_id, self._clock())

    def _key(self, team_id: str) -> str:
        return team_id if self._store is not None else ""  # one workspace: one bot, whatever team a thread names

    def forget(self, team_id: str, client: AsyncWebClient, code: str = "") -> bool:
        """Drop the bot of `client` after Slack refused its token (`code`: why); True when asking again may find
        another token. A token Slack calls expired is refreshed on the next lookup even if our clock disagrees."""
        if self._store is None:
            return False  # the one token is all there is
        if code == "token_expired" and client.token:
            self._expired[team_id] = client.token
        cached = self._bots.get(team_id)
        if cached is not None and cached.client is client:  # not a newer one another call found meanwhile
            del self._bots[team_id]
        return True

    def forget_workspace(self, owner_id: str) -> None:
        """Drop every bot of an install that is gone (the team's own, or an org's and its teams')."""
        for team_id, cached in list(self._bots.items()):
            if team_id == owner_id or cached.owner_id == owner_id:
                del self._bots[team_id]
        self._org_of = {team: org for team, org in self._org_of.items() if org[0] != owner_id}

    async def _find(self, team_id: str) -> TeamBot:
        if self._store is None:
            return TeamBot(self._client, None, None, self._clock(), owner_id=team_id)
        found = await self._store.find_team_bot(team_id)
        if found is None or not found[1].bot_token:
            self._org_of.pop(team_id, None)  # a link to an org this process recorded may be gone: record it again
            raise SlackError(f"no bot installed in workspace {team_id}", NOT_INSTALLED)
        owner_id, stored = found
        refresh_at = None
        if self._refresher is not None:
            expired = self._expired.pop(team_id, None) == stored.bot_token
            stored = await self._refresher.fresh(owner_id, stored, expired=expired)
            refresh_at = self._refresher.refresh_at(stored, owner_id)
        client = _client_with_token(self._client, stored.bot_token or "")
        return TeamBot(client, stored.bot_user_id or None, stored.bot_id, self._clock(), owner_id, refresh_at)


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
