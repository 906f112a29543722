"""The search_slack tool through the running bot process: a channel that allows it searches with the action token of
the mention being answered; a workspace where Slack refuses it says so and is not asked again for a while; an
answer whose event carried no token says so."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from store.channel_config import ChannelConfigStore
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.harness import BotProcess
from tests.integration.stored import task_field

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
ELSEWHERE = "C0LAUNCH"


@pytest.fixture(autouse=True)
async def _search_allowed(redis: Redis, slack: FakeSlack) -> None:
    """The channel's admins turned search_slack on (it is off by default)."""
    await ChannelConfigStore(redis).save(
        slack.team_id, CHANNEL, instructions="", model="", tools=("search_slack",), by="U0ADMIN", from_version=0
    )


def mention(slack: FakeSlack, text: str) -> dict[str, Any]:
    return slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True)


async def answered(redis: Redis, slack: FakeSlack, envelope: dict[str, Any]) -> None:
    ref = ThreadRef(slack.team_id, CHANNEL, str(envelope["event"]["ts"]))

    async def finished() -> bool:
        return await task_field(redis, ref, str(envelope["event_id"]), "status") in ("done", "failed")

    await wait_until(finished, timeout=30)


def tool_results(claude: FakeAnthropic) -> list[str]:
    """The text of every search_slack result the bot sent back to the model, in order (each request repeats the
    earlier ones: each result once)."""
    names: dict[str, str] = {}
    texts: dict[str, str] = {}
    for request in claude.requests:
        for message in request["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block.get("type") == "tool_use":
                    names[block["id"]] = block["name"]
                elif block.get("type") == "tool_result" and names.get(block["tool_use_id"]) == "search_slack":
                    content = block["content"]
                    texts[block["tool_use_id"]] = content if isinstance(content, str) else content[0]["text"]
    return list(texts.values())


async def test_an_answer_searches_slack_with_its_mentions_action_token(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """The model's search_slack call reaches assistant.search.context with the action token of the very mention being
    answered, and the model gets the message found elsewhere, with its permalink."""
    slack.add_message(ELSEWHERE, "Decision: the launch date is March 3.", user="U0BOB")
    claude.reply_tool_use("search_slack", {"query": "launch date"}, text_before="Let me search Slack.")
    claude.reply_text("The launch is on March 3.")
    envelope = mention(slack, "when do we launch?")
    await bot.post_event(envelope)
    await answered(redis, slack, envelope)
    [search] = slack.calls_to("assistant.search.context")
    assert search["action_token"] == envelope["event"]["action_token"]
    assert search["query"] == "launch date" and search["channel_types"] == "public_channel"
    [result] = tool_results(claude)
    assert "Decision: the launch date is March 3." in result
    assert f"https://fake.slack.com/archives/{ELSEWHERE}/p" in result
    assert "search_slack" in [tool["name"] for tool in claude.requests[0]["tools"]]


async def test_a_workspace_where_slack_refuses_search_is_told_so_and_not_asked_again(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """With the feature off in the workspace, the tool's result says search isn't available there; the next answer's
    search gets the same result without Slack being asked again, and the refusal is logged once."""
    slack.disable_search()
    for question in ("when do we launch?", "and the budget?"):
        claude.reply_tool_use("search_slack", {"query": question})
        claude.reply_text("I could not search Slack.")
        envelope = mention(slack, question)
        await bot.post_event(envelope)
        await answered(redis, slack, envelope)
    results = tool_results(claude)
    assert len(results) == 2
    assert all(text.startswith("Searching Slack isn't available in this workspace:") for text in results)
    assert len(slack.calls_to("assistant.search.context")) == 1
    assert bot.output().count("searching Slack is off there") == 1


async def test_an_answer_whose_event_had_no_action_token_says_so(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """A mention delivered without an action token (as from an older Slack) gets a tool result saying the search
    needs one, and Slack is not asked."""
    claude.reply_tool_use("search_slack", {"query": "launch"})
    claude.reply_text("I cannot search right now.")
    envelope = mention(slack, "when do we launch?")
    del envelope["event"]["action_token"]
    await bot.post_event(envelope)
    await answered(redis, slack, envelope)
    [result] = tool_results(claude)
    assert result.startswith("Searching Slack needs the permission Slack sends with a person's message")
    assert slack.calls_to("assistant.search.context") == []
