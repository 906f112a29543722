"""How the bot gets each workspace's bot token: the one SLACK_BOT_TOKEN, or (OAuth mode) Bolt's install flow with
installations in Redis, and the same per-workspace bots for Bolt's authorize and for every task's calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.settings import Settings
from handlers.installation_store import RedisInstallationStore, RedisOAuthStateStore
from handlers.team_bots import TeamBots
from handlers.token_refresh import REFRESH_TIMEOUT_SECONDS, TokenRefresher
from handlers.workspace_auth import WorkspaceAuthorize, skip_uninstalled
from store.connection import RedisClient
from store.leaving import Departures
from store.refresh_locks import RefreshLocks

# Bolt's paths, fixed; the app's Redirect URL (manifest: oauth_config.redirect_urls) must end in the second.
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


@dataclass(frozen=True)
class Workspaces:
    """The bots of the workspaces the app serves, and what Bolt needs to authorize each request."""

    bots: TeamBots
    installations: RedisInstallationStore | None  # None: one workspace, one token

    def bolt_options(self, settings: Settings, redis: RedisClient, departures: Departures) -> dict[str, Any]:
        """AsyncApp's keyword arguments for authorization: none with the one token (Bolt uses the client's)."""
        if self.installations is None:
            return {}
        return {
            "oauth_settings": build_oauth_settings(settings, redis, departures),
            "authorize": WorkspaceAuthorize(self.bots),
            "before_authorize": skip_uninstalled(self.bots),
        }


def build_workspaces(settings: Settings, redis: RedisClient, slack_client: AsyncWebClient) -> Workspaces:
    """Each workspace's bot: in OAuth mode the client has no token, and each thread's calls take its workspace's bot
    token from the store, refreshed there when it is about to expire (the app's token rotation)."""
    if not settings.oauth_mode:
        return Workspaces(TeamBots(slack_client), None)
    client_secret = settings.slack_client_secret
    assert settings.slack_client_id is not None and client_secret is not None  # oauth_mode's meaning
    installations = RedisInstallationStore(redis)
    # A client of its own for refreshes: no retries (a refresh token is single use: a retry after Slack took it would
    # lose the new token) and a timeout well within the refresh lock's.
    refresh_client = AsyncWebClient(
        base_url=slack_client.base_url,
        session=slack_client.session,
        timeout=REFRESH_TIMEOUT_SECONDS,
        retry_handlers=[],
    )
    rotator = AsyncTokenRotator(
        client_id=settings.slack_client_id, client_secret=client_secret.get_secret_value(), client=refresh_client
    )
    refresher = TokenRefresher(rotator, installations, RefreshLocks(redis))
    return Workspaces(TeamBots(slack_client, installations, refresher=refresher), installations)


def build_oauth_settings(
    settings: Settings, redis: RedisClient, departures: Departures | None = None
) -> AsyncOAuthSettings:
    """Bolt's OAuth install: the states and installations kept in Redis, every process sharing them (an install
    clears the workspace's uninstall mark in `departures`)."""
    client_secret = settings.slack_client_secret
    assert settings.slack_client_id is not None and client_secret is not None  # oauth_mode's meaning
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=client_secret.get_secret_value(),
        scopes=settings.bot_scopes,
        redirect_uri=settings.slack_redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=authorization_url(settings.slack_api_url),
        installation_store=RedisInstallationStore(redis, departures=departures),
        state_store=RedisOAuthStateStore(redis),
    )


def authorization_url(slack_api_url: str) -> str:
    """Slack's authorize page on the host of SLACK_API_URL (slack.com's, or a fake's in tests)."""
    parts = urlsplit(slack_api_url)
    return f"{parts.scheme}://{parts.netloc}/oauth/v2/authorize"
