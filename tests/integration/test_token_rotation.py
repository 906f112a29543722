"""Token rotation through the running bot in OAuth mode: an answer under way when its workspace's bot token expires,
or comes due for its refresh, refreshes it once (Slack's refresh token is single use) and goes on with the new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from handlers.token_refresh import MINUTES_BEFORE_EXPIRATION
from store.connection import RedisClient
from tests.fakes import FakeAnthropic, FakeSlack, Reply, wait_until
from tests.integration.harness import BotProcess
from tests.integration.test_oauth_install import (
    OAuthBotFactory,
    make_oauth_bot,  # noqa: F401 - a fixture, used by name
    stored_bot_token,
)
from tests.integration.test_workspaces import install

pytestmark = pytest.mark.integration
TEAM = "T0ROTATE"
CHANNEL = "C0ROTATE"
# Slow: 40 pieces of 8 characters, one every 0.2 s, so about 8 s of answer.
SLOW_ANSWER = " ".join(f"word{number:03d}" for number in range(40))
# A token this close to the refresh margin is due for its refresh a few seconds after the install, mid-answer.
DUE_IN_SECONDS = 5
DUE_SOON_LIFETIME = MINUTES_BEFORE_EXPIRATION * 60 + DUE_IN_SECONDS


@pytest.fixture
def start_bot(make_oauth_bot: OAuthBotFactory) -> OAuthBotFactory:  # noqa: F811 - the imported fixture it hands on
    """Starts bot processes in OAuth mode, each killed at the end (test_oauth_install's `make_oauth_bot`)."""
    return make_oauth_bot


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The emulator with the app's token rotation on (twelve-hour tokens and refresh tokens), without the agent
    features: answers are shown by updating their message, a Web API call every second or so."""
    async with FakeSlack(token_rotation=True) as fake:
        fake.agent_features = False
        yield fake


def mention(slack: FakeSlack, text: str) -> dict[str, Any]:
    """The envelope of a new mention of the bot in CHANNEL of TEAM (the message stored in the fake too)."""
    with slack.as_workspace(TEAM):
        return slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> {text}", mention=True)


def replies(slack: FakeSlack, envelope: dict[str, Any]) -> list[str]:
    """Texts of the bot's messages in the thread the mention started."""
    with slack.as_workspace(TEAM):
        return [str(message.get("text", "")) for message in slack.bot_replies(CHANNEL, str(envelope["event"]["ts"]))]


def refreshes(slack: FakeSlack) -> list[dict[str, Any]]:
    """The oauth.v2.access calls that rotated a token (not the install's code exchange)."""
    return [args for args in slack.calls_to("oauth.v2.access") if args.get("grant_type") == "refresh_token"]


def refresh_index(slack: FakeSlack) -> int:
    """Where in slack.calls the (first) refresh is."""
    return next(n for n, call in enumerate(slack.calls) if call.args.get("grant_type") == "refresh_token")


def answer_writes(slack: FakeSlack) -> list[int]:
    """Where in slack.calls the bot posted or updated a message (the one answer's placeholder and its updates)."""
    return [n for n, call in enumerate(slack.calls) if call.method in ("chat.postMessage", "chat.update")]


async def ask_for_slow_answer(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> dict[str, Any]:
    """Mention the bot for SLOW_ANSWER (its authorize done when the request is answered); the mention's envelope."""
    claude.enqueue(Reply([{"type": "text", "text": SLOW_ANSWER}], chunk_delay=0.2))
    envelope = mention(slack, "tell me a long story")
    assert await bot.post_event(envelope) == 200
    return envelope


async def start_slow_answer(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic) -> dict[str, Any]:
    """Mention the bot for SLOW_ANSWER and wait until its first words show in Slack; the mention's envelope."""
    envelope = await ask_for_slow_answer(bot, slack, claude)
    await wait_until(lambda: any("word00" in text for text in replies(slack, envelope)), timeout=10)
    return envelope


@pytest.mark.parametrize("streamed", [False, True], ids=["updated", "streamed"])
async def test_a_token_slack_calls_expired_mid_answer_is_refreshed_once_and_the_answer_goes_on(
    start_bot: OAuthBotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient, streamed: bool
) -> None:
    """The workspace's token expires at Slack while an answer is shown (its message updated, or streamed into with
    Slack's streaming methods), our clock still thinking it good for hours: the refused call refreshes it once, and
    the answer completes, every later call carrying the new token, which the store now holds."""
    slack.agent_features = streamed
    bot = await start_bot()
    old = await install(bot, slack, redis, TEAM)
    envelope = await start_slow_answer(bot, slack, claude)

    grant = slack.token_grant(old)
    assert grant is not None and grant.expires_at is not None
    grant.expires_at = slack.clock()  # what twelve hours passing does, early
    expired = len(slack.calls)

    await wait_until(lambda: replies(slack, envelope) == [SLOW_ANSWER], timeout=15)
    assert len(refreshes(slack)) == 1
    new = await stored_bot_token(redis, TEAM)
    assert new is not None and new != old
    later = [call for call in slack.calls[expired:] if call.method != "oauth.v2.access"]
    refused = [call for call in later if call.token == old]
    assert refused and all(call.team_id is None for call in refused)  # Slack said token_expired
    accepted = [call for call in later if call.team_id == TEAM]
    assert accepted and {call.token for call in accepted} == {new}
    tokens = [call.token for call in later]
    switch = tokens.index(new)
    assert set(tokens[:switch]) == {old} and set(tokens[switch:]) == {new}, "the old token was used after the refresh"
    assert "Slack refused its bot token (token_expired); looking it up again" in bot.output()


async def test_a_token_due_for_its_refresh_is_refreshed_mid_answer_before_it_expires(
    start_bot: OAuthBotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """A token that comes due by our clock (two hours before it expires) while an answer streams is refreshed
    once, before Slack ever refuses it, and the answer completes with the new token."""
    slack.token_lifetime = DUE_SOON_LIFETIME
    bot = await start_bot()
    old = await install(bot, slack, redis, TEAM)
    envelope = await ask_for_slow_answer(bot, slack, claude)
    assert not refreshes(slack), "the mention's authorize refreshed a token not yet due"

    await wait_until(lambda: replies(slack, envelope) == [SLOW_ANSWER], timeout=20)
    assert len(refreshes(slack)) == 1
    writes, cut = answer_writes(slack), refresh_index(slack)
    assert writes[0] < cut < writes[-1], "the token was not refreshed while the answer was being written"
    new = await stored_bot_token(redis, TEAM)
    assert new is not None and new != old
    bot_calls = [call for call in slack.calls if call.token in (old, new)]
    assert all(call.team_id == TEAM for call in bot_calls), "Slack refused a call"
    assert {call.token for call in slack.calls[cut:] if call.token in (old, new)} == {new}
    grant = slack.token_grant(old)
    assert grant is not None and grant.works_at(slack.clock())  # refreshed ahead of its expiry


async def test_two_processes_needing_the_due_token_at_once_refresh_it_once(
    start_bot: OAuthBotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """While one process refreshes the due token for its running answer, a mention reaches another process, whose
    authorize needs the same token: it waits for the first one's refresh instead of spending the refresh token
    again, and both answers complete with the new token."""
    slack.token_lifetime = DUE_SOON_LIFETIME
    web = await start_bot(RUN_WORKERS_IN_WEB="false", DYNO="web.2")
    worker = await start_bot()  # started last: Slack sends the install back to it
    old = await install(worker, slack, redis, TEAM)
    slack.delay("oauth.v2.access", 2.0)  # the worker's refresh takes a while: the web process asks meanwhile
    first = await ask_for_slow_answer(worker, slack, claude)

    await wait_until(lambda: refreshes(slack), timeout=10)
    assert replies(slack, first) and replies(slack, first) != [SLOW_ANSWER], "no answer under way"
    assert await stored_bot_token(redis, TEAM) == old, "the refresh ended before the other process asked"
    claude.reply_text("the second answer")
    second = mention(slack, "and a short one")
    assert await web.post_event(second) == 200

    await wait_until(lambda: replies(slack, first) == [SLOW_ANSWER], timeout=15)
    await wait_until(lambda: replies(slack, second) == ["the second answer"], timeout=10)
    assert len(refreshes(slack)) == 1
    new = await stored_bot_token(redis, TEAM)
    assert new is not None and new != old
    assert {call.token for call in slack.calls[refresh_index(slack) :] if call.team_id == TEAM} == {new}
