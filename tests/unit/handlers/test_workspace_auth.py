"""Bolt's authorization in OAuth mode, through the app the composition root builds: each request with its
workspace's bot from the same TeamBots the tasks use, a request from a workspace without an installation
acknowledged with one line, and an Enterprise Grid org-wide install serving every team of its org."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import SlackError
from handlers.installation_store import RedisInstallationStore
from handlers.team_bots import NOT_INSTALLED, TeamBots
from playground.payloads import app_mention_event, app_uninstalled_event, event_envelope
from store import keys
from store.models import ThreadRef
from tests.fakes import FakeSlack
from tests.unit.handlers.scenario import dispatch
from tests.unit.handlers.test_uninstall_listeners import installation, oauth_bot

ORG = "E0ORG"
CHANNEL = "C0ORG"
TS = "1700000000.000100"


def org_installation() -> Installation:
    """An org-wide install of the app in ORG: it belongs to no team."""
    return Installation(
        app_id="A1",
        enterprise_id=ORG,
        team_id=None,
        is_enterprise_install=True,
        bot_token="xoxb-org",
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="app_mentions:read,chat:write",
        user_id="U1",
        installed_at=time.time(),
    )


def mention(team_id: str, text: str = "<@UBOT> hello", *, org_wide: bool = False) -> dict[str, Any]:
    """A mention's envelope from `team_id`; `org_wide`: the team is in ORG, where the app is installed org-wide,
    and the authorization names the org, not the team."""
    event = app_mention_event(text, user="U1", channel=CHANNEL, ts=TS, team=team_id)
    if not org_wide:
        return event_envelope(event, team_id=team_id)
    envelope = event_envelope(event, team_id=team_id, enterprise_id=ORG)
    envelope["authorizations"][0].update(team_id=None, is_enterprise_install=True)
    return envelope


async def test_a_request_from_a_workspace_without_an_installation_is_acknowledged_with_one_line(
    slack: FakeSlack, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """No installation: a 200 (so Slack stops retrying), one INFO line naming the workspace, no error from Bolt,
    nothing recorded and nothing sent to Slack."""
    bot = oauth_bot(slack, redis)
    caplog.set_level(logging.DEBUG)

    assert await dispatch(bot, mention("T0GONE")) == 200

    lines = [r for r in caplog.records if "T0GONE" in r.getMessage() and r.levelno >= logging.INFO]
    assert [(r.levelname, r.name) for r in lines] == [("INFO", "handlers.workspace_auth")]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not await redis.exists(bot.space.inbox(ThreadRef("T0GONE", CHANNEL, TS)))
    assert slack.calls == []


async def test_a_request_is_authorized_with_its_workspaces_bot(slack: FakeSlack, redis: Redis) -> None:
    """An installed workspace's mention is taken, with Bolt's context carrying that workspace's own bot."""
    bot = oauth_bot(slack, redis)
    seen: list[tuple[str | None, str | None]] = []

    @bot.bolt.middleware
    async def record(context: Any, next: Any) -> None:
        seen.append((context.team_id, context.bot_token))
        await next()

    store = RedisInstallationStore(redis)
    await store.async_save(installation("T0ONE"))
    await store.async_save(installation("T0TWO"))

    for team in ("T0ONE", "T0TWO"):
        assert await dispatch(bot, mention(team)) == 200
    assert seen == [("T0ONE", "xoxb-T0ONE"), ("T0TWO", "xoxb-T0TWO")]
    assert await redis.llen(bot.space.inbox(ThreadRef("T0TWO", CHANNEL, TS))) == 1


async def test_an_org_wide_install_serves_every_team_of_its_org(slack: FakeSlack, redis: Redis) -> None:
    """With the app installed org-wide, a mention in a team of the org is taken, and the team's tasks (which know
    only the team) find the org's bot; a team outside the org is still not installed."""
    bot = oauth_bot(slack, redis)
    await RedisInstallationStore(redis).async_save(org_installation())

    assert await dispatch(bot, mention("T0EAST", org_wide=True)) == 200

    assert await redis.llen(bot.space.inbox(ThreadRef("T0EAST", CHANNEL, TS))) == 1
    bots = TeamBots(AsyncWebClient(base_url=slack.api_url), RedisInstallationStore(redis))
    served = await bots.bot("T0EAST")
    assert (served.token, served.owner_id, served.user_id) == ("xoxb-org", ORG, "UBOT")
    with pytest.raises(SlackError) as refused:
        await bots.bot("T0ELSEWHERE")
    assert refused.value.code == NOT_INSTALLED


async def test_an_org_wide_uninstall_stops_the_work_of_every_team_of_the_org(slack: FakeSlack, redis: Redis) -> None:
    """The org uninstalls: the queued mention of its team is cancelled, the org and its team are marked as left, the
    org's bot is gone; a reinstall within the grace period clears both marks."""
    bot = oauth_bot(slack, redis)
    store = RedisInstallationStore(redis)
    await store.async_save(org_installation())
    envelope = mention("T0EAST", org_wide=True)
    assert await dispatch(bot, envelope) == 200
    thread = ThreadRef("T0EAST", CHANNEL, TS)

    uninstall = event_envelope(app_uninstalled_event(), team_id="T0EAST", enterprise_id=ORG)
    uninstall["authorizations"][0].update(team_id=None, is_enterprise_install=True)
    assert await dispatch(bot, uninstall) == 200

    assert await redis.hget(bot.space.task(thread, str(envelope["event_id"])), "status") == "cancelled"
    assert await redis.exists(keys.team_left(ORG)) and await redis.exists(keys.team_left("T0EAST"))
    assert await store.async_find_bot(enterprise_id=ORG, team_id=None, is_enterprise_install=True) is None

    assert bot.bolt.installation_store is not None  # Bolt's, which clears the marks of a workspace that comes back
    await bot.bolt.installation_store.async_save(org_installation())
    assert not await redis.exists(keys.team_left(ORG)) and not await redis.exists(keys.team_left("T0EAST"))
    assert (await TeamBots(AsyncWebClient(), store).bot("T0EAST")).token == "xoxb-org"


async def test_an_org_wide_uninstall_leaves_a_team_with_its_own_install_alone(slack: FakeSlack, redis: Redis) -> None:
    """A team of the org that installed the app itself keeps working when the org's install goes, though it was once
    seen using the org's."""
    bot = oauth_bot(slack, redis)
    store = RedisInstallationStore(redis)
    await store.async_save(org_installation())
    assert await dispatch(bot, mention("T0OWN", org_wide=True)) == 200
    await store.async_save(installation("T0OWN"))

    uninstall = event_envelope(app_uninstalled_event(), team_id="T0OWN", enterprise_id=ORG)
    uninstall["authorizations"][0].update(team_id=None, is_enterprise_install=True)
    assert await dispatch(bot, uninstall) == 200

    assert await redis.exists(keys.team_left(ORG))
    assert not await redis.exists(keys.team_left("T0OWN"))
    assert await redis.hget(bot.space.task(ThreadRef("T0OWN", CHANNEL, TS), "Ev0"), "status") is None
    assert (await TeamBots(AsyncWebClient(), store).bot("T0OWN")).token == "xoxb-T0OWN"


async def test_a_shared_channels_event_does_not_link_the_other_team_to_the_org(slack: FakeSlack, redis: Redis) -> None:
    """An event from a Slack Connect channel may name a team of another org: it is not recorded as the org's."""
    bot = oauth_bot(slack, redis)
    store = RedisInstallationStore(redis)
    await store.async_save(org_installation())
    envelope = mention("T0GUEST", org_wide=True)
    envelope["is_ext_shared_channel"] = True

    assert await dispatch(bot, envelope) == 200

    assert await store.org_teams(ORG) == []
