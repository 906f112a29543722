"""Remote MCP servers through the MCP connector, through the running bot process: a channel that enables a server
has its tools called by the (fake) API over TLS with the server's token; the call shows as a step and is journaled;
a server that fails or is down gives a note and a finished answer; the token reaches no log line and no Slack call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from store.channel_config import ChannelConfigStore
from tests.fakes import FakeAnthropic, FakeMcpServer, FakeSlack, Reply, self_signed_certificate, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
OTHER = "C0RANDOM"
TOKEN = "mcp-token-7f3a9c1e5b"
BETA = "mcp-client-2025-11-20"


@pytest.fixture(autouse=True)
def _agent_features(slack: FakeSlack) -> None:
    slack.agent_features = True  # native streaming: tool steps show as task updates


@pytest.fixture
async def docs(tmp_path: Path, claude: FakeAnthropic) -> AsyncIterator[FakeMcpServer]:
    """An MCP server over TLS that wants TOKEN; the fake API's connector trusts its certificate."""
    cert, key = self_signed_certificate(tmp_path / "tls")
    claude.mcp.trust(str(cert))
    claude.mcp.timeout = 1.0
    async with FakeMcpServer(cert, key, token=TOKEN) as server:
        yield server


@pytest.fixture
async def mcp_env(docs: FakeMcpServer, redis: Redis, slack: FakeSlack) -> dict[str, str]:
    """Settings of a bot whose deployment offers the server as "docs", enabled in CHANNEL only, logging everything
    at DEBUG."""
    await ChannelConfigStore(redis).save(
        slack.team_id, CHANNEL, instructions="", model="", tools=("mcp:docs",), by="U0ADMIN", from_version=0
    )
    servers = [{"name": "docs", "url": docs.url, "token": TOKEN}]
    return {"MCP_SERVERS": json.dumps(servers), "LOG_LEVEL": "DEBUG", "LOG_LEVEL_LIBRARIES": "DEBUG"}


@pytest.fixture
async def mcp_bot(make_bot: BotFactory, mcp_env: dict[str, str]) -> BotProcess:
    """A running bot with the MCP settings."""
    bot = make_bot(**mcp_env)
    await bot.start()
    return bot


def mention(slack: FakeSlack, text: str, channel: str = CHANNEL) -> dict[str, Any]:
    return slack.post_user_message(channel, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True)


async def answer(slack: FakeSlack, envelope: dict[str, Any], channel: str = CHANNEL, *, ending: str = "") -> str:
    """The text of the finished answer: the session back to active, and the text ending with `ending` if given (a
    resumed answer streamed before the crash gets its final text after)."""
    ts = str(envelope["event"]["ts"])

    def finished() -> bool:
        if not (slack.has_session(channel, ts) and list(slack.session(channel, ts).history)[-1:] == ["active"]):
            return False
        replies = slack.bot_replies(channel, ts)
        return len(replies) == 1 and str(replies[0]["text"]).endswith(ending)

    await wait_until(finished, timeout=15)
    return str(slack.bot_replies(channel, ts)[0]["text"])


def blocks_of(request: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The content blocks of a kind in a request's messages."""
    return [
        block
        for message in request["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [])
        if block.get("type") == kind
    ]


def assert_token_nowhere(bot: BotProcess, slack: FakeSlack) -> None:
    """The token is in no log line of the bot (all at DEBUG) and in no Slack call it made."""
    assert TOKEN not in bot.output()
    assert "[redacted]" in bot.output()  # the SDK's DEBUG dump of the request was there, without it
    assert TOKEN not in json.dumps([call.args for call in slack.calls], default=str)


async def test_an_enabled_server_is_called_with_its_token_shown_as_a_step_and_journaled(
    mcp_bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, docs: FakeMcpServer, redis: Redis
) -> None:
    """The request carries the server, its toolset and the beta; the API calls the tool with the bearer token; the
    stream shows "Using docs.search_docs" done; the step's blocks are journaled and replayed in the next call."""
    search = {"type": "mcp_tool_use", "id": "mcptoolu_01", "name": "search_docs", "server_name": "docs"}
    read = {"type": "tool_use", "id": "toolu_01", "name": "read_thread", "input": {"limit": 5}}
    # The search, then a client tool: the next call replays the journaled step.
    claude.enqueue(Reply([{**search, "input": {"query": "design review"}}, read], "tool_use"))
    release = asyncio.Event()
    claude.enqueue(Reply([{"type": "text", "text": "Dana owns the design review."}], gate=release))
    envelope = mention(slack, "who owns the design review?")
    await mcp_bot.post_event(envelope)
    await wait_until(lambda: len(claude.requests) == 2, timeout=15)

    journal = [
        json.loads(value) async for key in redis.scan_iter(match="*:task:*") for value in await _steps(redis, key)
    ]
    [model_step] = [step for step in journal if step["kind"] == "model" and "mcp_tool_use" in json.dumps(step)]
    assert [block["type"] for block in model_step["content"]][:2] == ["mcp_tool_use", "mcp_tool_result"]
    release.set()
    assert await answer(slack, envelope) == "Dana owns the design review."

    first = claude.requests[0]
    assert first["mcp_servers"] == [{"type": "url", "url": docs.url, "name": "docs", "authorization_token": TOKEN}]
    assert {"type": "mcp_toolset", "mcp_server_name": "docs"} in first["tools"]
    assert BETA in claude.request_headers[0]["anthropic-beta"]
    [call] = docs.calls()
    assert call.authorization == f"Bearer {TOKEN}" and call.params["arguments"] == {"query": "design review"}
    replayed = claude.requests[1]
    assert blocks_of(replayed, "mcp_tool_use") and blocks_of(replayed, "mcp_tool_result")
    [reply] = slack.bot_replies(CHANNEL, str(envelope["event"]["ts"]))
    cards = [(card.title, card.status) for card in slack.stream(CHANNEL, reply["ts"]).tasks.values()]
    assert ("Using docs.search_docs", "complete") in cards
    assert_token_nowhere(mcp_bot, slack)


async def _steps(redis: Redis, key: str) -> list[str]:
    fields = await redis.hgetall(key)
    return [value for name, value in fields.items() if name.startswith("step:")]


async def test_a_channel_that_did_not_enable_the_server_does_not_send_it(
    mcp_bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, docs: FakeMcpServer
) -> None:
    """Servers are off by default: another channel's request has no mcp_servers, no toolset and no beta."""
    claude.reply_text("No tools here.")
    envelope = mention(slack, "hello", channel=OTHER)
    await mcp_bot.post_event(envelope)
    assert await answer(slack, envelope, channel=OTHER) == "No tools here."
    request = claude.last_request
    assert "mcp_servers" not in request
    assert not [tool for tool in request.get("tools", []) if tool.get("type") == "mcp_toolset"]
    assert "anthropic-beta" not in claude.request_headers[-1]
    assert docs.seen == []


async def test_a_call_that_times_out_gives_a_note_and_the_answer_finishes(
    mcp_bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, docs: FakeMcpServer
) -> None:
    """A tools/call that hangs past the connector's timeout is an error result: the step shows failed, the answer
    ends with a note naming the server, and the task finishes."""
    docs.mode = "hang"
    claude.reply_mcp_call("docs", "search_docs", {"query": "q"}, then="I could not search the documents.")
    envelope = mention(slack, "search the docs")
    await mcp_bot.post_event(envelope)
    text = await answer(slack, envelope)
    assert text.startswith("I could not search the documents.")
    assert "The MCP server docs did not answer the call to search_docs" in text
    [reply] = slack.bot_replies(CHANNEL, str(envelope["event"]["ts"]))
    cards = [(card.title, card.status) for card in slack.stream(CHANNEL, reply["ts"]).tasks.values()]
    assert ("Using docs.search_docs", "error") in cards
    assert_token_nowhere(mcp_bot, slack)


async def test_a_server_that_is_down_is_left_out_with_a_note(
    mcp_bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, docs: FakeMcpServer
) -> None:
    """The API refuses a request whose server cannot list its tools (400 naming it): the call is made again without
    that server, the task's later calls leave it out too, and the answer says the server did not answer."""
    docs.mode = "down"
    claude.reply_tool_use("read_thread", {"limit": 5})
    claude.reply_text("Here is what I know without the documents.")
    envelope = mention(slack, "what do the docs say?")
    await mcp_bot.post_event(envelope)
    text = await answer(slack, envelope)
    assert text.startswith("Here is what I know without the documents.")
    assert text.count("The MCP server docs did not answer, so this answer was written without its tools.") == 1
    refused, retried, after_the_tool = claude.requests
    assert refused["mcp_servers"] and "mcp_servers" not in retried and "mcp_servers" not in after_the_tool
    assert not [tool for tool in retried.get("tools", []) if tool.get("type") == "mcp_toolset"]
    assert_token_nowhere(mcp_bot, slack)


@pytest.mark.parametrize("mode", ["ok", "down"])
async def test_killed_after_the_answer_is_journaled_the_call_is_not_made_again(
    make_bot: BotFactory,
    mcp_env: dict[str, str],
    slack: FakeSlack,
    claude: FakeAnthropic,
    docs: FakeMcpServer,
    mode: Any,
) -> None:
    """kill -9 once the answer that called the server (or was made without it, the server being down) is journaled:
    the restarted bot posts it without asking the API or the server again, with the note the journal implies."""
    docs.mode = mode
    if mode == "ok":
        claude.reply_mcp_call("docs", "search_docs", {"query": "q"}, then="Dana owns it.")
    else:  # the model has no tools of a server left out
        claude.reply_text("Dana owns it.")
    crashing = make_bot(BOT_CRASH_AT="answer.journaled", **mcp_env)
    await crashing.start()
    envelope = mention(slack, "who owns it?")
    await crashing.post_event(envelope)
    assert await asyncio.wait_for(crashing.process.wait(), 15) == -9  # type: ignore[union-attr]
    requests, calls = len(claude.requests), len(docs.calls())
    restarted = make_bot(**mcp_env)
    await restarted.start()
    text = await answer(slack, envelope, ending="Dana owns it." if mode == "ok" else "without its tools.)_")
    assert text.startswith("Dana owns it.")
    assert (len(claude.requests), len(docs.calls())) == (requests, calls)
    if mode == "ok":
        assert calls == 1 and "MCP server" not in text
    else:
        assert requests == 2 and "The MCP server docs did not answer, so this answer was written without" in text
