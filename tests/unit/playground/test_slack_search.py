"""The emulator's side of Slack's search for agents: action tokens in people's events, and what
assistant.search.context refuses and finds."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import DEFAULT_TEAM_ID as TEAM
from tests.fakes import FakeSlack

SEARCH = "assistant.search.context"


def token_of(slack: FakeSlack, user: str, channel: str = "C0ASK") -> str:
    envelope = slack.post_user_message(channel, "<@U0BOT> hi", user=user, mention=True)
    return str(envelope["event"]["action_token"])


async def refusal(web: AsyncWebClient, **args: str) -> str:
    with pytest.raises(SlackApiError) as refused:
        await web.api_call(SEARCH, data=args)
    return str(refused.value.response["error"])


def test_peoples_events_carry_their_own_action_token_and_other_bots_events_none(slack: FakeSlack) -> None:
    """Each message a person writes comes with a new action token, in app_mention and message events alike; another
    app's message has none."""
    mention = slack.post_user_message("C0ASK", "<@U0BOT> hi", user="U0ALICE", mention=True)["event"]
    message = slack.post_user_message("C0ASK", "later", user="U0ALICE", thread_ts=mention["ts"])["event"]
    other = slack.post_other_app_mention("C0ASK", "<@U0BOT> hi", bot_id="B0OTHER", user="U0OTHERBOT")["event"]
    assert mention["action_token"] and message["action_token"]
    assert mention["action_token"] != message["action_token"]
    assert "action_token" not in other


async def test_a_bot_token_needs_an_action_token_and_valid_arguments(slack: FakeSlack, web: AsyncWebClient) -> None:
    """Without an action token, with an unknown channel type, more than 20 results or no query, Slack refuses."""
    token = token_of(slack, "U0ALICE")
    assert await refusal(web, query="launch") == "invalid_action_token"
    assert await refusal(web, query="launch", action_token=token, channel_types="everything") == "invalid_arguments"
    assert await refusal(web, query="launch", action_token=token, limit="21") == "invalid_arguments"
    assert await refusal(web, query=" ", action_token=token) == "invalid_arguments"
    assert await refusal(web, query="launch", action_token=token, cursor="not-ours") == "invalid_cursor"


async def test_a_dm_is_found_only_by_its_own_person_with_the_im_scope(slack: FakeSlack) -> None:
    """A user token with search:read.im finds its own DM's messages without an action token; another person's
    search does not, and a token without the scope is refused."""
    slack.add_message("D0ALICE", "my launch notes", user="U0ALICE")
    slack.issue_token("xoxp-alice", "user", TEAM, "U0ALICE", "search:read.public,search:read.im")
    slack.issue_token("xoxp-bob", "user", TEAM, "U0BOB", "search:read.public,search:read.im")
    slack.issue_token("xoxp-carol", "user", TEAM, "U0CAROL", "search:read.public")
    args = {"query": "launch", "channel_types": "im"}
    alice = await AsyncWebClient(token="xoxp-alice", base_url=slack.api_url).api_call(SEARCH, data=args)
    bob = await AsyncWebClient(token="xoxp-bob", base_url=slack.api_url).api_call(SEARCH, data=args)
    assert [m["channel_id"] for m in alice["results"]["messages"]] == ["D0ALICE"]
    assert bob["results"]["messages"] == []
    assert await refusal(AsyncWebClient(token="xoxp-carol", base_url=slack.api_url), **args) == "missing_scope"


async def test_bots_messages_are_left_out_unless_asked(slack: FakeSlack, web: AsyncWebClient) -> None:
    """include_bots decides whether bots' messages are found; each result says whether its author is a bot."""
    slack.add_message("C0LAUNCH", "launch reminder", user="U0OTHERBOT", bot_id="B0OTHER")
    token = token_of(slack, "U0ALICE")
    without = await web.api_call(SEARCH, data={"query": "reminder", "action_token": token})
    with_bots = await web.api_call(SEARCH, data={"query": "reminder", "action_token": token, "include_bots": "true"})
    assert without["results"]["messages"] == []
    assert [m["is_author_bot"] for m in with_bots["results"]["messages"]] == [True]
