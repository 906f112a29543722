"""Each thread's Web API calls with its workspace's bot token: from the installation store in OAuth mode, kept a short
while and looked up again when Slack refuses it; the one token, unchanged, in single-workspace mode."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import SlackError
from handlers.gateway import WebApiGateway
from handlers.installation_store import RedisInstallationStore
from handlers.team_bots import NOT_INSTALLED, TeamBots
from store.models import ThreadRef
from tests.fakes import FakeSlack

CHANNEL = "C0SAME"


class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def install(slack: FakeSlack, store: RedisInstallationStore, team_id: str, token: str) -> None:
    """Make `token` the bot token of `team_id` at the fake and in the store (as an OAuth install would)."""
    workspace = slack.workspaces.get(team_id) or slack.add_workspace(team_id)
    slack.issue_token(token, "bot", team_id, workspace.bot_user_id, "chat:write")
    bot = Bot(
        team_id=team_id,
        bot_token=token,
        bot_id=workspace.bot_id,
        bot_user_id=workspace.bot_user_id,
        bot_scopes="chat:write",
        installed_at=1.0,
    )
    await store.async_save_bot(bot)


@pytest.fixture
def store(redis: Redis) -> RedisInstallationStore:
    """The installation store on the test Redis."""
    return RedisInstallationStore(redis)


@pytest.fixture
def clock() -> Clock:
    """The clock the bots' cache reads."""
    return Clock()


@pytest.fixture
def oauth_gateway(slack: FakeSlack, store: RedisInstallationStore, clock: Clock) -> WebApiGateway:
    """The gateway of OAuth mode: a client without a token, each team's bot from the store."""
    return WebApiGateway(TeamBots(AsyncWebClient(base_url=slack.api_url), store, clock=clock))


async def test_each_workspace_is_called_with_its_own_token(
    slack: FakeSlack, store: RedisInstallationStore, oauth_gateway: WebApiGateway
) -> None:
    """Two workspaces with the same channel and thread ids: each reply goes to its own workspace, with its token."""
    await install(slack, store, "T0ONE", "xoxb-one")
    await install(slack, store, "T0TWO", "xoxb-two")
    for team in ("T0ONE", "T0TWO"):
        await oauth_gateway.post_reply(ThreadRef(team, CHANNEL, "1700000000.000100"), f"hello {team}")
    for team, token in (("T0ONE", "xoxb-one"), ("T0TWO", "xoxb-two")):
        assert [call.token for call in slack.calls_from(team)] == [token]
        with slack.as_workspace(team):
            assert [m["text"] for m in slack.bot_replies(CHANNEL, "1700000000.000100")] == [f"hello {team}"]


async def test_the_bot_user_is_the_workspaces_own_without_asking_slack(
    slack: FakeSlack, store: RedisInstallationStore, oauth_gateway: WebApiGateway
) -> None:
    """bot_user_id is per team, read from the stored bot: no auth.test is made."""
    await install(slack, store, "T0ONE", "xoxb-one")
    await install(slack, store, "T0TWO", "xoxb-two")
    assert await oauth_gateway.bot_user_id("T0ONE") == slack.workspaces["T0ONE"].bot_user_id
    assert await oauth_gateway.bot_user_id("T0TWO") == slack.workspaces["T0TWO"].bot_user_id
    assert slack.calls_to("auth.test") == []


async def test_a_refused_token_is_looked_up_again_once(
    slack: FakeSlack, store: RedisInstallationStore, oauth_gateway: WebApiGateway
) -> None:
    """After a reinstall revokes the cached token, the call that gets token_revoked is made again with the new one."""
    await install(slack, store, "T0ONE", "xoxb-old")
    thread = ThreadRef("T0ONE", CHANNEL, "1700000000.000100")
    await oauth_gateway.post_reply(thread, "first")
    grant = slack.token_grant("xoxb-old")
    assert grant is not None
    grant.revoked = True
    await install(slack, store, "T0ONE", "xoxb-new")
    await oauth_gateway.post_reply(thread, "second")
    assert [call.token for call in slack.calls] == ["xoxb-old", "xoxb-old", "xoxb-new"]


async def test_a_token_refused_after_a_fresh_look_is_an_error(
    slack: FakeSlack, store: RedisInstallationStore, oauth_gateway: WebApiGateway
) -> None:
    """A workspace whose stored token is revoked too gets one more try, then the SlackError."""
    await install(slack, store, "T0ONE", "xoxb-old")
    grant = slack.token_grant("xoxb-old")
    assert grant is not None
    grant.revoked = True
    with pytest.raises(SlackError) as raised:
        await oauth_gateway.post_reply(ThreadRef("T0ONE", CHANNEL, "1700000000.000100"), "hello")
    assert raised.value.code == "token_revoked"
    assert len(slack.calls) == 2


async def test_the_stored_bot_is_kept_for_its_lifetime(
    slack: FakeSlack, store: RedisInstallationStore, oauth_gateway: WebApiGateway, clock: Clock
) -> None:
    """A new token in the store is used once the cached bot's lifetime has passed, not before."""
    await install(slack, store, "T0ONE", "xoxb-first")
    thread = ThreadRef("T0ONE", CHANNEL, "1700000000.000100")
    await oauth_gateway.post_reply(thread, "one")
    await install(slack, store, "T0ONE", "xoxb-second")
    await oauth_gateway.post_reply(thread, "two")
    clock.now += 61
    await oauth_gateway.post_reply(thread, "three")
    assert [call.token for call in slack.calls] == ["xoxb-first", "xoxb-first", "xoxb-second"]


async def test_a_workspace_without_a_bot_is_not_called(oauth_gateway: WebApiGateway, slack: FakeSlack) -> None:
    """A thread of a team with no installation fails with not_installed, and nothing goes to Slack."""
    with pytest.raises(SlackError) as raised:
        await oauth_gateway.post_reply(ThreadRef("T0NONE", CHANNEL, "1700000000.000100"), "hello")
    assert raised.value.code == NOT_INSTALLED
    assert slack.calls == []


async def test_single_workspace_mode_uses_the_one_token_and_asks_who_once(
    slack: FakeSlack, gateway: WebApiGateway
) -> None:
    """Without a store every team's calls carry the one token, and auth.test is asked once for the bot user."""
    await gateway.post_reply(ThreadRef("T0ANY", CHANNEL, "1700000000.000100"), "hello")
    assert await gateway.bot_user_id("T0ANY") == slack.bot_user_id
    assert await gateway.bot_user_id("T0OTHER") == slack.bot_user_id
    assert len(slack.calls_to("auth.test")) == 1
    assert {call.token for call in slack.calls} == {slack.bot_token}
