"""Two workspaces installed in one OAuth-mode bot, with the same channel and thread ids: each thread's work is done
in its own workspace, with its own token, and its state never shows in the other."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import pytest

from store.connection import RedisClient
from tests.fakes import FakeAnthropic, FakeSlack, Reply, slash_command_form, wait_until
from tests.integration.harness import BotProcess
from tests.integration.test_oauth_install import (
    OAuthBotFactory,
    browse,
    make_oauth_bot,  # noqa: F401 - a fixture, used by name
    open_install_page,
    slack_redirect,
    stored_bot_token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def oauth_bot(make_oauth_bot: OAuthBotFactory) -> BotProcess:  # noqa: F811 - the imported fixture it starts
    """One bot in OAuth mode."""
    return await make_oauth_bot()


TEAMS = ("T0EAST", "T0WEST")
CHANNEL = "C0SAME"
THREAD_TS = "1700000000.000100"  # the same thread in both workspaces


async def install(bot: BotProcess, slack: FakeSlack, redis: RedisClient, team_id: str) -> str:
    """Install the app in `team_id` through the bot's install page; its stored bot token."""
    if team_id not in slack.workspaces:
        slack.add_workspace(team_id)
    link, cookie = await open_install_page(bot)
    page = await browse(await slack_redirect(slack, link, team_id), cookie)
    assert page.status == 200, page.text
    token = await stored_bot_token(redis, team_id)
    assert token is not None
    return token


def mention_in(slack: FakeSlack, team_id: str, text: str) -> dict[str, Any]:
    """The envelope of a mention of the bot in the shared thread of `team_id` (the parent seeded once)."""
    with slack.as_workspace(team_id):
        if slack.store.get(CHANNEL, THREAD_TS) is None:
            slack.add_message(CHANNEL, "the thread's start", user="U0ALICE", ts=THREAD_TS)
        return slack.post_user_message(
            CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=THREAD_TS, mention=True
        )


def replies_in(slack: FakeSlack, team_id: str) -> list[str]:
    """The texts of the bot's replies in the shared thread of `team_id`."""
    with slack.as_workspace(team_id):
        return [str(m.get("text", "")) for m in slack.bot_replies(CHANNEL, THREAD_TS)]


def answered_with(slack: FakeSlack, team_id: str, expected: list[str]) -> bool:
    """Whether the bot's replies in the shared thread of `team_id` are `expected` (placeholders replaced)."""
    return replies_in(slack, team_id) == expected


async def agent_status(bot: BotProcess, slack: FakeSlack, team_id: str) -> dict[str, Any]:
    """The acknowledgement of `/agent status` run in CHANNEL of `team_id`."""
    with slack.as_workspace(team_id):
        url = slack.response_url()
    form = slash_command_form(
        "/agent", "status", team_id=team_id, channel_id=CHANNEL, user_id="U0ALICE", response_url=url
    )
    status, body = await bot.post_command(form)
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


def secrets_heard(request: dict[str, Any]) -> Reply:
    """A model that answers with the workspaces' secrets its request carries (to tell whose context it got)."""
    asked = json.dumps(request)
    heard = [secret(team) for team in TEAMS if secret(team) in asked]
    return Reply(content=[{"type": "text", "text": "heard: " + " ".join(heard)}])


def secret(team_id: str) -> str:
    """What a workspace's user tells its agent."""
    return f"{team_id.lower()}-42"


async def test_mentions_in_two_workspaces_are_answered_each_in_its_own(
    oauth_bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """Mentioned at once in the same channel and thread ids of two workspaces, the bot answers each in its own
    workspace, every call of each answer with that workspace's token, each agent remembering only its thread."""
    claude.set_default(secrets_heard)
    tokens = {team: await install(oauth_bot, slack, redis, team) for team in TEAMS}
    installed = len(slack.calls)
    envelopes = [mention_in(slack, team, f"the secret is {secret(team)}") for team in TEAMS]
    assert await asyncio.gather(*(oauth_bot.post_event(envelope) for envelope in envelopes)) == [200, 200]
    for team in TEAMS:
        await wait_until(partial(answered_with, slack, team, [f"heard: {secret(team)}"]), 15)
    for team in TEAMS:
        calls = [call for call in slack.calls[installed:] if call.team_id == team]
        assert calls and {call.token for call in calls} == {tokens[team]}
    assert all(call.team_id in TEAMS for call in slack.calls[installed:])  # none refused (no token, a wrong one)

    # Each agent's memory is its own thread's: a second question in one workspace carries only its secret.
    await oauth_bot.post_event(mention_in(slack, "T0EAST", "what was the secret?"))
    await wait_until(lambda: replies_in(slack, "T0EAST")[1:] == [f"heard: {secret('T0EAST')}"], 15)
    assert replies_in(slack, "T0WEST") == [f"heard: {secret('T0WEST')}"]


async def test_agent_status_in_each_workspace_counts_only_its_own(
    oauth_bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """`/agent status` in a workspace counts its own agents in the channel, not the other workspace's."""
    for team in TEAMS:
        await install(oauth_bot, slack, redis, team)
    await oauth_bot.post_event(mention_in(slack, "T0EAST", "hello"))
    await wait_until(lambda: len(replies_in(slack, "T0EAST")) == 1, 15)
    east = await agent_status(oauth_bot, slack, "T0EAST")
    west = await agent_status(oauth_bot, slack, "T0WEST")
    assert east["text"].startswith("1 agent(s)"), east
    assert "No agents" in west["text"], west


async def test_a_reinstall_is_used_at_once_though_the_old_token_was_kept(
    oauth_bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """After an uninstall and a reinstall (a new token), the next answer's call refused with the kept old token is
    made again with the new one, and the answer is posted with it."""
    claude.set_default(secrets_heard)
    old = await install(oauth_bot, slack, redis, "T0EAST")
    await oauth_bot.post_event(mention_in(slack, "T0EAST", f"the secret is {secret('T0EAST')}"))
    await wait_until(partial(answered_with, slack, "T0EAST", [f"heard: {secret('T0EAST')}"]), 15)
    slack.uninstall("T0EAST")
    new = await install(oauth_bot, slack, redis, "T0EAST")
    assert new != old
    reinstalled = len(slack.calls)
    await oauth_bot.post_event(mention_in(slack, "T0EAST", "and again?"))
    await wait_until(lambda: len(replies_in(slack, "T0EAST")) == 2 and "heard" in replies_in(slack, "T0EAST")[1], 15)
    tokens = [call.token for call in slack.calls[reinstalled:] if call.team_id == "T0EAST"]
    assert tokens and set(tokens) == {new}
    assert "Slack refused its bot token (token_revoked); looking it up again" in oauth_bot.output()
