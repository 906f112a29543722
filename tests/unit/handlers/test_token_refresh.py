"""A workspace's expiring bot token (token rotation on) refreshed when it is looked up, saved through the store, and
refreshed once when several processes look it up at the same moment (Slack's refresh token is single use)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import SlackError
from handlers.gateway import WebApiGateway
from handlers.installation_store import RedisInstallationStore
from handlers.team_bots import TeamBots
from handlers.token_refresh import TokenRefresher
from playground.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from store.models import ThreadRef
from store.refresh_locks import RefreshLocks
from tests.fakes import FakeSlack

# slack_sdk's async oauth_v2_access (the install here, the rotator's refresh) hands aiohttp a BasicAuth, which
# aiohttp now deprecates: slack_sdk's to change, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
TEAM = "T0ROT"
REDIRECT = "https://bot.example.com/slack/oauth_redirect"
THREAD = ThreadRef(TEAM, "C0ROT", "1700000000.000100")
# A minute over the two hours' margin: a refreshed token is not due again for a minute, and install(due_now=True)
# records the first token as expiring two minutes early, so that it is due at once.
SHORT_LIFETIME = 7200.0 + 60
EARLY_SECONDS = 120


@pytest.fixture
async def rotating() -> AsyncIterator[FakeSlack]:
    """An emulator whose app has token rotation on, its tokens living a minute over two hours."""
    async with FakeSlack(token_rotation=True, token_lifetime=SHORT_LIFETIME) as fake:
        yield fake


async def install(slack: FakeSlack, store: RedisInstallationStore, *, due_now: bool = False) -> Bot:
    """Install the app in TEAM through oauth.v2.access and save its bot, as Bolt's flow does (`due_now`: recorded
    as expiring EARLY_SECONDS before Slack says, so that it is due for a refresh at once)."""
    workspace = slack.add_workspace(TEAM)
    redirect = slack.authorize(TEAM, "U0ADMIN", "chat:write", REDIRECT, "st-1")
    assert redirect.code is not None
    answer = await AsyncWebClient(base_url=slack.api_url).oauth_v2_access(
        client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, code=redirect.code, redirect_uri=REDIRECT
    )
    bot = Bot(
        team_id=TEAM,
        bot_token=str(answer["access_token"]),
        bot_refresh_token=str(answer["refresh_token"]),
        bot_token_expires_in=int(answer["expires_in"]) - (EARLY_SECONDS if due_now else 0),
        bot_id=workspace.bot_id,
        bot_user_id=workspace.bot_user_id,
        bot_scopes="chat:write",
        installed_at=time.time(),
    )
    await store.async_save_bot(bot)
    return bot


def process(slack: FakeSlack, redis: Redis) -> WebApiGateway:
    """The gateway one bot process builds in OAuth mode, refreshing tokens."""
    client = AsyncWebClient(base_url=slack.api_url)
    store = RedisInstallationStore(redis)
    rotator = AsyncTokenRotator(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, client=client)
    return WebApiGateway(TeamBots(client, store, refresher=TokenRefresher(rotator, store, RefreshLocks(redis))))


def refreshes(slack: FakeSlack) -> list[dict[str, object]]:
    """The oauth.v2.access calls that refreshed a token."""
    return [args for args in slack.calls_to("oauth.v2.access") if args.get("grant_type") == "refresh_token"]


async def test_an_expiring_token_is_refreshed_and_saved(rotating: FakeSlack, redis: Redis) -> None:
    """A token within two hours of expiring is refreshed before the call, and the new bot saved in the store."""
    store = RedisInstallationStore(redis)
    installed = await install(rotating, store, due_now=True)
    await process(rotating, redis).post_reply(THREAD, "hello")
    saved = await store.async_find_bot(enterprise_id=None, team_id=TEAM)
    assert saved is not None and saved.bot_token != installed.bot_token
    assert saved.bot_refresh_token != installed.bot_refresh_token
    assert [call.token for call in rotating.calls_from(TEAM) if call.method == "chat.postMessage"] == [saved.bot_token]
    assert len(refreshes(rotating)) == 1


async def test_processes_refreshing_at_once_spend_the_refresh_token_once(rotating: FakeSlack, redis: Redis) -> None:
    """Three processes needing the expiring token at the same moment: one refreshes, all post with the new token."""
    store = RedisInstallationStore(redis)
    await install(rotating, store, due_now=True)
    gateways = [process(rotating, redis) for _ in range(3)]
    await asyncio.gather(*(gateway.post_reply(THREAD, f"from {n}") for n, gateway in enumerate(gateways)))
    saved = await store.async_find_bot(enterprise_id=None, team_id=TEAM)
    assert saved is not None
    assert len(refreshes(rotating)) == 1
    posts = [call for call in rotating.calls_from(TEAM) if call.method == "chat.postMessage"]
    assert [call.token for call in posts] == [saved.bot_token] * 3


async def test_a_token_far_from_expiring_is_not_refreshed(redis: Redis) -> None:
    """Without token rotation (no expiry) or with hours left, the stored bot is used as it is."""
    async with FakeSlack(token_rotation=True, token_lifetime=43_200) as slack:
        store = RedisInstallationStore(redis)
        installed = await install(slack, store)
        await process(slack, redis).post_reply(THREAD, "hello")
        assert refreshes(slack) == []
        assert [call.token for call in slack.calls_from(TEAM)] == [installed.bot_token]


async def test_a_refused_refresh_of_an_expired_token_is_an_error_and_frees_the_lock(
    rotating: FakeSlack, redis: Redis
) -> None:
    """A refresh token Slack refuses, for a token already expired, fails the call with its code, and leaves no lock
    behind."""
    store = RedisInstallationStore(redis)
    installed = await install(rotating, store, due_now=True)
    installed.bot_refresh_token = "xoxe-1-forged"
    installed.bot_token_expires_at = int(time.time()) - 1
    await store.async_delete_bot(enterprise_id=None, team_id=TEAM)  # (an older expiry never replaces a newer one)
    await store.async_save_bot(installed)
    with pytest.raises(SlackError) as raised:
        await process(rotating, redis).post_reply(THREAD, "hello")
    assert raised.value.code == "invalid_refresh_token"
    assert not await RefreshLocks(redis).held(TEAM)


async def test_a_refresh_token_spent_by_bolt_meanwhile_takes_the_bot_bolt_saved(
    rotating: FakeSlack, redis: Redis
) -> None:
    """When Slack refuses the refresh token because another process just spent it (its lock ran out during a slow
    refresh), the bot that process saved is used."""
    store = RedisInstallationStore(redis)
    installed = await install(rotating, store, due_now=True)
    client = AsyncWebClient(base_url=rotating.api_url)
    rotator = AsyncTokenRotator(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, client=client)
    refreshed = await rotator.perform_bot_token_rotation(bot=installed)
    assert refreshed is not None
    by_bolt: Bot = refreshed

    class SavingLate(RedisInstallationStore):
        """A store whose first read comes before Bolt's save, as in the race."""

        reads = 0

        async def async_find_bot(self, **kwargs: Any) -> Bot | None:
            self.reads += 1
            if self.reads == 1:
                return installed
            await store.async_save_bot(by_bolt)
            return await super().async_find_bot(**kwargs)

    refresher = TokenRefresher(rotator, SavingLate(redis), RefreshLocks(redis))
    fresh = await refresher.fresh(TEAM, installed)
    assert fresh.bot_token == by_bolt.bot_token


async def test_a_cached_token_is_refreshed_once_it_is_due_though_its_minute_is_not_over(redis: Redis) -> None:
    """A bot is kept a minute, but not past the moment its rotating token comes within the margin of expiring."""
    async with FakeSlack(token_rotation=True, token_lifetime=7200 + 1) as slack:
        store = RedisInstallationStore(redis)
        installed = await install(slack, store)
        gateway = process(slack, redis)
        await gateway.post_reply(THREAD, "before")
        await asyncio.sleep(1.5)  # the token is now within two hours of expiring
        await gateway.post_reply(THREAD, "after")
        saved = await store.async_find_bot(enterprise_id=None, team_id=TEAM)
        assert saved is not None and len(refreshes(slack)) == 1
        posts = [call.token for call in slack.calls_from(TEAM) if call.method == "chat.postMessage"]
        assert posts == [installed.bot_token, saved.bot_token]


async def test_a_token_slack_calls_expired_is_refreshed_though_our_clock_disagrees(redis: Redis) -> None:
    """Slack answers token_expired for a token with hours left by our clock (a skewed clock, a token cut short):
    the call is made again with a refreshed token, and the refresh token is spent once."""
    async with FakeSlack(token_rotation=True, token_lifetime=43_200) as slack:
        store = RedisInstallationStore(redis)
        installed = await install(slack, store)
        gateway = process(slack, redis)
        await gateway.post_reply(THREAD, "before")
        grant = slack.token_grant(installed.bot_token or "")
        assert grant is not None
        grant.expires_at = slack.clock()

        await gateway.post_reply(THREAD, "after")

        saved = await store.async_find_bot(enterprise_id=None, team_id=TEAM)
        assert saved is not None and saved.bot_token != installed.bot_token
        assert len(refreshes(slack)) == 1
        posts = [call.token for call in slack.calls_from(TEAM) if call.method == "chat.postMessage"]
        assert posts[0] == installed.bot_token and posts[-1] == saved.bot_token


async def test_a_failed_refresh_keeps_the_working_token_and_tries_again_a_minute_later(
    rotating: FakeSlack, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack fails the refresh of a token that still works for an hour: the call goes out with the current token,
    one warning is logged, and the next calls of that minute do not try the refresh again."""
    store = RedisInstallationStore(redis)
    installed = await install(rotating, store, due_now=True)
    rotating.fail_next("oauth.v2.access", error="internal_error")
    gateway = process(rotating, redis)

    for n in range(3):
        await gateway.post_reply(THREAD, f"reply {n}")

    assert len(refreshes(rotating)) == 1
    posts = [call.token for call in rotating.calls_from(TEAM) if call.method == "chat.postMessage"]
    assert posts == [installed.bot_token] * 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "refresh failed (internal_error)" in warnings[0]
    assert installed.bot_token not in warnings[0] and str(installed.bot_refresh_token) not in warnings[0]
