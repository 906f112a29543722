"""Bolt's installation and OAuth state stores, kept in Redis: slack_sdk's objects on the way in and out, plain
records in store/installations.py and store/oauth_states.py in between.

They follow slack_sdk's own stores (file, SQLite): the latest install wins, an org-wide install
(is_enterprise_install) is found for every team of its enterprise, each installing user's latest installation is
kept, and the workspace's latest bot is kept apart, its token lent to installations found by user.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from store.connection import RedisClient
from store.installations import InstallationRecords, Workspace
from store.leaving import Departures
from store.oauth_states import OAuthStates

# Bolt's own default lifetime of a state (AsyncOAuthSettings.state_expiration_seconds): ten minutes to click Allow.
DEFAULT_STATE_EXPIRATION_SECONDS = 600

# The bot's fields an installation takes from the workspace's latest bot, which may be newer than the copy the
# installation was saved with (a token refreshed through save_bot, a later install by another user).
_BOT_FIELDS = ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at")


def _keyword_parameters(model: type) -> frozenset[str]:
    return frozenset(inspect.signature(model).parameters)


# An object's attributes are its constructor's keywords (its *_expires_at fields being the copies' form of
# *_expires_in), so a record is the object's attributes, and reading one back keeps only what the installed
# slack_sdk's constructor takes: a record written by another version of slack_sdk still reads.
_INSTALLATION_PARAMETERS = _keyword_parameters(Installation)
_BOT_PARAMETERS = _keyword_parameters(Bot)


def _fields(model: Installation | Bot, parameters: frozenset[str]) -> dict[str, Any]:
    return {name: value for name, value in vars(model).items() if name in parameters}


def installation_record(installation: Installation) -> dict[str, Any]:
    """An installation as the JSON record the store keeps."""
    return _fields(installation, _INSTALLATION_PARAMETERS)


def bot_record(bot: Bot) -> dict[str, Any]:
    """A bot as the JSON record the store keeps."""
    return _fields(bot, _BOT_PARAMETERS)


def installation_from(record: dict[str, Any]) -> Installation:
    """The Installation a stored record describes."""
    return Installation(**{name: value for name, value in record.items() if name in _INSTALLATION_PARAMETERS})


def bot_from(record: dict[str, Any]) -> Bot:
    """The Bot a stored record describes."""
    return Bot(**{name: value for name, value in record.items() if name in _BOT_PARAMETERS})


class RedisInstallationStore(AsyncInstallationStore):
    """Installations and bots per workspace in Redis, for Bolt's OAuth flow and authorization."""

    def __init__(
        self, redis: RedisClient, *, departures: Departures | None = None, logger: logging.Logger | None = None
    ) -> None:
        self._records = InstallationRecords(redis)
        self._departures = departures  # an install clears a workspace's uninstall mark (None: nobody keeps one)
        self._logger = logger or logging.getLogger(__name__)

    @property
    def logger(self) -> logging.Logger:
        """The logger Bolt's flow writes to on this store's behalf."""
        return self._logger

    async def async_save(self, installation: Installation) -> None:
        """Record an install, and its bot when it has a bot token (a user-token-only install has none)."""
        workspace = Workspace.of(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        bot = bot_record(installation.to_bot()) if installation.bot_token else None
        await self._records.save_installation(
            workspace,
            installation_record(installation),
            installed_at=installation.installed_at,
            user_id=installation.user_id,
            bot=bot,
            bot_expires_at=installation.bot_token_expires_at,
        )
        if self._departures is not None:  # it came back within the grace period: its agents stay
            await self._departures.came_back(workspace.owner_id)
            if workspace.team_id is None:  # an org: its teams' agents too
                for team_id in await self._records.org_teams(workspace.owner_id):
                    await self._departures.came_back(team_id)

    async def async_save_bot(self, bot: Bot) -> None:
        """Record the workspace's bot (a refreshed token, with its new refresh token and expiry)."""
        if not bot.bot_token:
            self._logger.debug("Not saving a bot without a bot token")
            return
        workspace = Workspace.of(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        await self._records.save_bot(
            workspace, bot_record(bot), installed_at=bot.installed_at, expires_at=bot.bot_token_expires_at
        )

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        """The latest bot of the workspace or org, or None."""
        record = await self._records.find_bot(Workspace.of(enterprise_id, team_id, is_enterprise_install))
        return bot_from(record) if record is not None else None

    async def find_team_bot(self, team_id: str) -> tuple[str, Bot] | None:
        """The bot serving `team_id` and whose it is (the team's id, or its org's for an org-wide install), or None."""
        found = await self._records.find_team_bot(team_id)
        return (found.owner_id, bot_from(found.bot)) if found is not None else None

    async def join_org(self, team_id: str, enterprise_id: str) -> None:
        """Record that the org-wide install of `enterprise_id` serves `team_id`."""
        await self._records.join_org(team_id, enterprise_id)

    async def org_teams(self, enterprise_id: str) -> list[str]:
        """The teams the org-wide install of `enterprise_id` was seen serving."""
        return await self._records.org_teams(enterprise_id)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The latest installation of the workspace or org (by `user_id`, if given), carrying the latest bot's token."""
        workspace = Workspace.of(enterprise_id, team_id, is_enterprise_install)
        found = await self._records.find_installation(workspace, user_id)
        if found.installation is None:
            return None
        installation = installation_from(found.installation)
        # slack_sdk's stores lend the latest bot to an installation found by user or saved without a bot token
        # (bolt-python#664); we lend it whenever it differs, as a token refreshed through async_save_bot is newer
        # than the installation's copy, and Bolt would otherwise refresh the old one again.
        if found.bot is not None and found.bot.get("bot_token") != installation.bot_token:
            latest_bot = bot_from(found.bot)
            for name in _BOT_FIELDS:
                setattr(installation, name, getattr(latest_bot, name))
        return installation

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the workspace's bot (its token was revoked); its installations stay."""
        await self._records.delete_bot(Workspace.of(enterprise_id, team_id, is_enterprise_install=False))

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Forget `user_id`'s installation (its tokens were revoked), or every installation of the workspace."""
        workspace = Workspace.of(enterprise_id, team_id, is_enterprise_install=False)
        await self._records.delete_installation(workspace, user_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget everything of the workspace (the app was uninstalled), in one command."""
        await self._records.delete_all(Workspace.of(enterprise_id, team_id, is_enterprise_install=False))


class RedisOAuthStateStore(AsyncOAuthStateStore):
    """OAuth states in Redis: each good once, for `expiration_seconds`, in whichever process gets the redirect."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        expiration_seconds: int = DEFAULT_STATE_EXPIRATION_SECONDS,
        logger: logging.Logger | None = None,
    ) -> None:
        self._states = OAuthStates(redis)
        self.expiration_seconds = expiration_seconds
        self._logger = logger or logging.getLogger(__name__)

    @property
    def logger(self) -> logging.Logger:
        """The logger Bolt's flow writes to on this store's behalf."""
        return self._logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state for the install page (Bolt passes nothing we need)."""
        return await self._states.issue(self.expiration_seconds)

    async def async_consume(self, state: str) -> bool:
        """True once for a state issued here and not expired; False for a reused, expired or forged one."""
        return await self._states.consume(state)
