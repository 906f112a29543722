"""An Enterprise Grid org-wide install through the running bot: one install by an org admin, its bot token serving
every workspace of the org the app is added to, and its uninstall stopping them all."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from handlers.installation_store import RedisInstallationStore
from store import keys
from store.connection import RedisClient
from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.harness import BotProcess
from tests.integration.test_oauth_install import (
    OAuthBotFactory,
    browse,
    make_oauth_bot,  # noqa: F401 - a fixture, used by name
    open_install_page,
)

pytestmark = pytest.mark.integration

ORG = "E0GRID"
TEAMS = ("T0NORTH", "T0SOUTH")
SUBSCRIBED = ("app_uninstalled", "tokens_revoked")  # of what Slack sends when an org uninstalls (manifest.yml)
CHANNELS = {"T0NORTH": "C0NORTH", "T0SOUTH": "C0SOUTH"}  # channel ids are unique across an org


@pytest.fixture
async def oauth_bot(make_oauth_bot: OAuthBotFactory) -> BotProcess:  # noqa: F811 - the imported fixture it starts
    """One bot in OAuth mode."""
    return await make_oauth_bot()


@pytest.fixture
def org(slack: FakeSlack) -> FakeSlack:
    """The emulator with an org of two workspaces, the app allowed org-wide (manifest: org_deploy_enabled)."""
    slack.org_deploy_enabled = True
    slack.add_enterprise(ORG, admins=("U0ADMIN",))
    for team in TEAMS:
        slack.add_workspace(team, enterprise_id=ORG)
    return slack


async def install_org_wide(bot: BotProcess, slack: FakeSlack, redis: RedisClient) -> str:
    """An org admin installs the app for the whole org through the bot's install page; the org's stored bot token."""
    link, cookie = await open_install_page(bot)
    slack.sign_in(TEAMS[0], "U0ADMIN", org_wide=True)
    redirect = await browse(link)
    assert redirect.status == 302 and redirect.location is not None, redirect.text
    page = await browse(redirect.location, cookie)
    assert page.status == 200, page.text
    stored = await RedisInstallationStore(redis).async_find_bot(
        enterprise_id=ORG, team_id=None, is_enterprise_install=True
    )
    assert stored is not None and stored.bot_token
    return stored.bot_token


def mention_in(slack: FakeSlack, team_id: str, text: str) -> dict[str, Any]:
    """The envelope of a mention of the bot in the workspace's channel (a new thread)."""
    with slack.as_workspace(team_id):
        return slack.post_user_message(
            CHANNELS[team_id], f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True
        )


def thread_replies(slack: FakeSlack, team_id: str, thread_ts: str) -> list[str]:
    """The bot's replies in the thread of `team_id` that started at `thread_ts`."""
    with slack.as_workspace(team_id):
        return [str(m.get("text", "")) for m in slack.bot_replies(CHANNELS[team_id], thread_ts)]


def answered_once(slack: FakeSlack, team_id: str, thread_ts: str) -> bool:
    """Whether the bot has replied once in the thread."""
    return len(thread_replies(slack, team_id, thread_ts)) == 1


async def test_an_org_wide_install_answers_in_every_workspace_it_is_added_to_and_leaves_them_all(
    oauth_bot: BotProcess,
    make_oauth_bot: OAuthBotFactory,  # noqa: F811 - the imported fixture
    org: FakeSlack,
    claude: FakeAnthropic,
    redis: RedisClient,
) -> None:
    """Installed org-wide and added to both workspaces, the bot answers a mention in each with the org's token; the
    org's uninstall cancels a queued mention of either workspace and marks both as left."""
    slack = org
    token = await install_org_wide(oauth_bot, slack, redis)
    slack.grant_team_access(ORG)  # an org admin adds the app to both workspaces (the bot is not subscribed to it)
    installed = len(slack.calls)

    envelopes = {team: mention_in(slack, team, "hello") for team in TEAMS}
    for envelope in envelopes.values():
        assert await oauth_bot.post_event(envelope) == 200
    for team, envelope in envelopes.items():
        await wait_until(partial(answered_once, slack, team, str(envelope["event"]["ts"])), 15)
    calls = slack.calls[installed:]
    assert calls and {call.token for call in calls} == {token}
    assert {call.team_id for call in calls if call.method == "chat.postMessage"} == set(TEAMS)

    await oauth_bot.stop()
    web = await make_oauth_bot(RUN_WORKERS_IN_WEB="false")  # takes requests, runs no task: the mention waits queued
    assert await web.post_event(mention_in(slack, "T0SOUTH", "are you there?")) == 200
    for envelope in slack.uninstall_org(ORG):
        if envelope["event"]["type"] in SUBSCRIBED:
            assert await web.post_event(envelope) == 200
    await web.stop()

    assert await redis.exists(keys.team_left(ORG)) and await redis.exists(keys.team_left("T0SOUTH"))
    assert await redis.exists(keys.team_left("T0NORTH"))
    store = RedisInstallationStore(redis)
    assert await store.async_find_bot(enterprise_id=ORG, team_id=None, is_enterprise_install=True) is None
    assert "cancelled 1 task(s) in 1 thread(s)" in web.output()
