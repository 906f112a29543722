"""RedisInstallationStore and RedisOAuthStateStore against a real Redis, through slack_sdk's own objects and Bolt's
own uninstall and revocation listeners."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.listener.async_builtins import AsyncTokenRevocationListeners
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation

from handlers.installation_store import RedisInstallationStore, RedisOAuthStateStore
from store import keys


def installation(
    team_id: str | None = "T1", user_id: str = "U1", token: str = "xoxb-1", at: float = 1_700_000_000.5, **extra: Any
) -> Installation:
    """An installation as Bolt's OAuth flow builds it from oauth.v2.access."""
    return Installation(
        app_id="A1",
        enterprise_id=extra.pop("enterprise_id", None),
        team_id=team_id,
        team_name="Acme",
        bot_token=token,
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="app_mentions:read,chat:write",
        user_id=user_id,
        user_scopes="",
        installed_at=at,
        **extra,
    )


def context(enterprise_id: str | None, team_id: str | None) -> AsyncBoltContext:
    """The context Bolt gives its built-in listeners for an event of that workspace."""
    return AsyncBoltContext(enterprise_id=enterprise_id, team_id=team_id)


async def test_an_installation_comes_back_as_it_was_saved(redis: Redis) -> None:
    """Every field of a saved Installation, custom values included, comes back; its bot is found on its own."""
    store = RedisInstallationStore(redis)
    saved = installation(incoming_webhook_url="https://hooks.example/1", custom_values={"plan": "pro"})
    await store.async_save(saved)
    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None and found.to_dict() == saved.to_dict()
    assert found.get_custom_value("plan") == "pro"
    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.to_dict() == saved.to_bot().to_dict()
    assert bot.bot_scopes == ["app_mentions:read", "chat:write"]
    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T2") is None


async def test_the_latest_install_wins_and_a_user_lookup_gets_the_latest_bot(redis: Redis) -> None:
    """A later install by another user is the workspace's latest; the first user's installation, found by user,
    carries the latest bot's token, as slack_sdk's stores do."""
    store = RedisInstallationStore(redis)
    await store.async_save(installation(user_id="U1", token="xoxb-1", at=1_700_000_000.0))
    await store.async_save(installation(user_id="U2", token="xoxb-2", at=1_700_000_100.0))
    latest = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert latest is not None and (latest.user_id, latest.bot_token) == ("U2", "xoxb-2")
    by_first = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert by_first is not None and (by_first.user_id, by_first.bot_token) == ("U1", "xoxb-2")
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U9") is None


async def test_an_org_wide_install_is_found_for_any_team_of_the_org(redis: Redis) -> None:
    """An is_enterprise_install installation (no team) is found for every team of its enterprise."""
    store = RedisInstallationStore(redis)
    await store.async_save(installation(team_id=None, enterprise_id="E1", is_enterprise_install=True))
    for team_id in ("T3", "T4"):
        found = await store.async_find_installation(enterprise_id="E1", team_id=team_id, is_enterprise_install=True)
        assert found is not None and found.is_enterprise_install and found.enterprise_id == "E1"
        bot = await store.async_find_bot(enterprise_id="E1", team_id=team_id, is_enterprise_install=True)
        assert bot is not None and bot.bot_token == "xoxb-1"
    assert await store.async_find_bot(enterprise_id="E1", team_id="T3", is_enterprise_install=False) is None


async def test_a_rotated_bot_token_is_kept_with_its_refresh_token_and_expiry(redis: Redis) -> None:
    """With token rotation, a bot refreshed as Bolt does (a copy with new token, refresh token and expiry, saved with
    async_save_bot) replaces the old one, and the installation is found with the refreshed token."""
    store = RedisInstallationStore(redis)
    await store.async_save(installation(token="xoxe.xoxb-1", bot_refresh_token="xoxe-1-a", bot_token_expires_in=60))
    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and bot.bot_refresh_token == "xoxe-1-a"
    assert bot.bot_token_expires_at is not None and abs(bot.bot_token_expires_at - (time.time() + 60)) < 5
    refreshed = Bot(**bot.to_dict_for_copying())
    refreshed.bot_token, refreshed.bot_refresh_token = "xoxe.xoxb-2", "xoxe-1-b"
    refreshed.bot_token_expires_at = int(time.time()) + 43_200
    await store.async_save_bot(refreshed)
    found_bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert found_bot is not None and found_bot.to_dict() == refreshed.to_dict()
    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None
    assert (found.bot_token, found.bot_refresh_token) == ("xoxe.xoxb-2", "xoxe-1-b")
    assert found.bot_token_expires_at == refreshed.bot_token_expires_at


async def test_refreshing_an_older_installations_bot_keeps_the_refreshed_token(redis: Redis) -> None:
    """An older user's installation, found by user with the latest bot lent to it and saved back after Bolt refreshed
    that bot, keeps the refreshed token (Slack revokes the used refresh token); a stale copy saved later does not
    bring the old token back."""
    store = RedisInstallationStore(redis)
    rotating = {"bot_refresh_token": "xoxe-1-a", "bot_token_expires_in": 600}
    await store.async_save(installation(user_id="U1", token="xoxe.xoxb-1", at=1_700_000_000.0, **rotating))
    await store.async_save(installation(user_id="U2", token="xoxe.xoxb-2", at=1_700_000_100.0, **rotating))
    found = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")
    assert found is not None and found.bot_token == "xoxe.xoxb-2"
    stale = Installation(**found.to_dict_for_copying())
    refreshed = Installation(**found.to_dict_for_copying())
    refreshed.bot_token, refreshed.bot_refresh_token = "xoxe.xoxb-3", "xoxe-1-b"
    refreshed.bot_token_expires_at = int(time.time()) + 43_200
    await store.async_save(refreshed)
    await store.async_save(stale)
    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")
    assert bot is not None and (bot.bot_token, bot.bot_refresh_token) == ("xoxe.xoxb-3", "xoxe-1-b")
    latest = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert latest is not None and (latest.user_id, latest.bot_token) == ("U2", "xoxe.xoxb-3")


async def test_revoked_tokens_and_uninstalls_through_bolts_listeners(redis: Redis) -> None:
    """Bolt's tokens_revoked listener forgets the users' installations and the bot; app_uninstalled forgets the
    whole workspace; another workspace keeps its installation."""
    store = RedisInstallationStore(redis)
    await store.async_save(installation(user_id="U1", at=1_700_000_000.0))
    await store.async_save(installation(user_id="U2", at=1_700_000_100.0))
    await store.async_save(installation(team_id="T2"))
    listeners = AsyncTokenRevocationListeners(store)
    await listeners.handle_tokens_revoked_events({"tokens": {"oauth": ["U2"]}}, context(None, "T1"))
    latest = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert latest is not None and latest.user_id == "U1"
    await listeners.handle_tokens_revoked_events({"tokens": {"bot": ["UBOT"]}}, context(None, "T1"))
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    await listeners.handle_app_uninstalled_events(context(None, "T1"))
    assert await store.async_find_installation(enterprise_id=None, team_id="T1") is None
    assert await redis.keys("*") == [keys.installations("T2")]


async def test_oauth_states_are_single_use_and_forged_ones_refused(redis: Redis) -> None:
    """A state from async_issue is consumed once; a second consume, or an unknown state, is refused."""
    states = RedisOAuthStateStore(redis, expiration_seconds=300)
    state = await states.async_issue()
    assert 290 <= await redis.ttl(keys.oauth_state(state)) <= 300
    assert await states.async_consume(state)
    assert not await states.async_consume(state)
    assert not await states.async_consume("forged-state")
