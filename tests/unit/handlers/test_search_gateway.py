"""Searching Slack on the Web API (handlers/search_gateway.py) against the Slack emulator: what the request carries,
what comes back, and how Slack's refusals become errors (a workspace's remembered for a while)."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import SearchTokenRefused, SearchUnavailable, SlackError
from handlers.gateway import WebApiGateway
from handlers.search_gateway import REFUSAL_SECONDS
from tests.fakes import DEFAULT_TEAM_ID as TEAM
from tests.fakes import FakeSlack

SCOPES_WITHOUT_SEARCH = "app_mentions:read,channels:history,chat:write"


def gateway(slack: FakeSlack, token: str | None = None) -> WebApiGateway:
    return WebApiGateway(AsyncWebClient(token=token or slack.bot_token, base_url=slack.api_url))


def asking(slack: FakeSlack, user: str = "U0ALICE") -> str:
    """The action token of a mention `user` writes."""
    envelope = slack.post_user_message("C0ASK", "<@U0BOT> what was the launch date?", user=user, mention=True)
    return str(envelope["event"]["action_token"])


async def test_a_search_finds_public_messages_with_their_permalinks(slack: FakeSlack) -> None:
    """The hits are the public messages sharing words with the query, each with its channel, author, ts and link."""
    ts = slack.add_message("C0LAUNCH", "We moved the launch date to March 3.", user="U0BOB")
    slack.add_message("C0LAUNCH", "Lunch is at noon.", user="U0BOB")
    page = await gateway(slack).search_context(TEAM, query="launch date", action_token=asking(slack), limit=5)
    hit = next(hit for hit in page.hits if hit.channel_id == "C0LAUNCH")
    assert (hit.ts, hit.author_user_id, hit.text) == (ts, "U0BOB", "We moved the launch date to March 3.")
    assert hit.permalink.startswith("https://fake.slack.com/archives/C0LAUNCH/p")
    assert all("Lunch" not in hit.text for hit in page.hits)


async def test_the_request_carries_the_action_token_in_its_body_and_asks_for_public_channels_only(
    slack: FakeSlack,
) -> None:
    """The action token goes in the form body (never in the URL), with channel_types public_channel and the limit."""
    token = asking(slack)
    await gateway(slack).search_context(TEAM, query="launch", action_token=token, limit=50)
    [call] = [call for call in slack.calls if call.method == "assistant.search.context"]
    assert call.body_format == "form"
    assert call.args["action_token"] == token
    assert call.args["team_id"] == TEAM  # an org-wide install's token names the workspace it searches
    assert (call.args["channel_types"], call.args["limit"]) == ("public_channel", "20")  # Slack's most a call


async def test_a_private_channel_is_searched_only_for_its_members_and_never_by_the_gateway(slack: FakeSlack) -> None:
    """The emulator shows a private channel's messages only to members with the private scope; the gateway, which
    asks for public channels only, never gets them even for a member."""
    slack.add_message("C0SECRET", "The launch is secret.", user="U0BOB")
    slack.make_private("C0SECRET", {"U0BOB"})
    bob = asking(slack, user="U0BOB")
    page = await gateway(slack).search_context(TEAM, query="launch", action_token=bob, limit=20)
    assert all(hit.channel_id != "C0SECRET" for hit in page.hits)
    slack.issue_token("xoxb-private", "bot", TEAM, slack.bot_user_id, "search:read.public,search:read.private")
    client = AsyncWebClient(token="xoxb-private", base_url=slack.api_url)
    args = {"query": "launch", "channel_types": "private_channel"}
    for_bob = await client.api_call("assistant.search.context", data={**args, "action_token": bob})
    for_alice = await client.api_call("assistant.search.context", data={**args, "action_token": asking(slack)})
    assert [m["channel_id"] for m in for_bob["results"]["messages"]] == ["C0SECRET"]
    assert for_alice["results"]["messages"] == []


async def test_an_expired_or_unknown_action_token_is_refused_as_the_tokens_fault(slack: FakeSlack) -> None:
    """A token past its life, or one Slack never issued, is SearchTokenRefused, and the workspace stays searchable."""
    token = asking(slack)
    now = slack.clock()
    slack.clock = lambda: now + slack.action_token_lifetime + 1
    search = gateway(slack)
    with pytest.raises(SearchTokenRefused):
        await search.search_context(TEAM, query="launch", action_token=token, limit=5)
    with pytest.raises(SearchTokenRefused):
        await search.search_context(TEAM, query="launch", action_token="1.2.nothing", limit=5)
    await search.search_context(TEAM, query="launch", action_token=asking(slack), limit=5)  # no refusal kept


async def test_a_workspace_without_the_feature_is_refused_and_not_asked_again_for_a_while(slack: FakeSlack) -> None:
    """feature_not_enabled is SearchUnavailable; Slack is not asked again until REFUSAL_SECONDS have passed."""
    slack.disable_search()
    search = gateway(slack)
    now = [1000.0]
    search._search_clock = lambda: now[0]
    for _ in range(2):
        with pytest.raises(SearchUnavailable) as refused:
            await search.search_context(TEAM, query="launch", action_token=asking(slack), limit=5)
        assert refused.value.code == "feature_not_enabled"
    assert len(slack.calls_to("assistant.search.context")) == 1
    now[0] += REFUSAL_SECONDS + 1
    with pytest.raises(SearchUnavailable):
        await search.search_context(TEAM, query="launch", action_token=asking(slack), limit=5)
    assert len(slack.calls_to("assistant.search.context")) == 2


async def test_an_install_without_the_search_scope_is_refused_for_the_workspace(slack: FakeSlack) -> None:
    """A bot token without search:read.public (an install from an older manifest) gets SearchUnavailable
    missing_scope."""
    slack.issue_token("xoxb-old", "bot", TEAM, slack.bot_user_id, SCOPES_WITHOUT_SEARCH)
    with pytest.raises(SearchUnavailable) as refused:
        await gateway(slack, "xoxb-old").search_context(TEAM, query="launch", action_token=asking(slack), limit=5)
    assert refused.value.code == "missing_scope"


async def test_another_workspaces_action_token_is_refused(slack: FakeSlack) -> None:
    """An action token works only in the workspace whose event carried it."""
    slack.add_workspace("T0OTHER", team_name="Other", bot_user_id="U0BOT2", bot_id="B0BOT2")
    with slack.as_workspace("T0OTHER"):
        elsewhere = asking(slack)
    with pytest.raises(SearchTokenRefused):
        await gateway(slack).search_context(TEAM, query="launch", action_token=elsewhere, limit=5)


async def test_too_many_searches_in_a_minute_are_rate_limited_not_refused(slack: FakeSlack) -> None:
    """Past Slack's per-minute limit the answer is HTTP 429 ratelimited: a SlackError, not the workspace's refusal."""
    search, token = gateway(slack), asking(slack)
    with pytest.raises(SlackError) as limited:
        for _ in range(40):
            await search.search_context(TEAM, query="launch", action_token=token, limit=1)
    assert limited.value.code == "ratelimited"
    assert not isinstance(limited.value, SearchUnavailable)
    assert search._search_refused == {}


async def test_results_page_with_a_cursor(slack: FakeSlack) -> None:
    """More hits than the limit come with a cursor that gives the next ones."""
    for n in range(5):
        slack.add_message("C0LAUNCH", f"launch note {n}", user="U0BOB")
    search, token = gateway(slack), asking(slack)
    first = await search.search_context(TEAM, query="launch note", action_token=token, limit=3)
    assert len(first.hits) == 3 and first.next_cursor
    second = await search.search_context(
        TEAM, query="launch note", action_token=token, limit=3, cursor=first.next_cursor
    )
    assert {hit.ts for hit in first.hits}.isdisjoint(hit.ts for hit in second.hits)
