"""ClaudeClient with MCP servers, against the fake API and a real MCP server: the beta endpoint, the steps it shows,
and a call asked again without a server the API could not use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import pytest
from tenacity import AsyncRetrying, stop_after_attempt, wait_none

from bot.agent.client import ClaudeClient, default_retry_policy
from bot.agent.mcp import McpServer, McpServers
from bot.agent.progress import Progress
from bot.agent.setup import AgentSetup
from bot.core.errors import ModelRequestError
from tests.fakes import FakeAnthropic, FakeMcpServer, Reply, self_signed_certificate

MESSAGES = [{"role": "user", "content": "find the design review"}]
TOKEN = "mcp-unit-token"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def claude(certificate: tuple[Path, Path]) -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        fake.mcp.trust(str(certificate[0]))
        fake.mcp.timeout = 0.5
        yield fake


@pytest.fixture
async def docs(certificate: tuple[Path, Path]) -> AsyncIterator[FakeMcpServer]:
    async with FakeMcpServer(*certificate, token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(claude: FakeAnthropic) -> AsyncIterator[ClaudeClient]:
    sdk = anthropic.AsyncAnthropic(api_key="test", base_url=claude.base_url, max_retries=0)
    quick = AsyncRetrying(
        stop=stop_after_attempt(2), wait=wait_none(), reraise=True, retry=default_retry_policy().retry
    )
    yield ClaudeClient(sdk, model="claude-test", max_tokens=100, retry=quick)
    await sdk.close()


def request_parts(*servers: McpServer) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The tools and the extra fields of a task allowed every one of these servers."""
    mcp = McpServers(servers)
    setup = AgentSetup(tools=tuple(server.tool for server in servers))
    return [mcp.toolsets[server.tool] for server in servers], mcp.request_options(setup)


async def test_a_streamed_call_shows_the_mcp_tool_as_a_step(
    client: ClaudeClient, claude: FakeAnthropic, docs: FakeMcpServer
) -> None:
    """On the beta endpoint, an mcp_tool_use starts a step "Using docs.search_docs" and its result finishes it."""
    tools, extra = request_parts(McpServer("docs", docs.url, TOKEN))
    claude.reply_mcp_call("docs", "search_docs", {"query": "review"}, then="Dana.")
    seen: list[Progress] = []

    async def progress(event: Progress) -> None:
        seen.append(event)

    step = await client.step("sys", MESSAGES, tools, on_progress=progress, extra=extra)
    assert [block["type"] for block in step.content] == ["mcp_tool_use", "mcp_tool_result", "text"]
    assert [(event.kind, event.title, event.error) for event in seen] == [
        ("tool_started", "Using docs.search_docs", False),
        ("tool_finished", "docs.search_docs", False),
    ]
    assert "mcp-client-2025-11-20" in claude.request_headers[-1]["anthropic-beta"]
    assert step.mcp_dropped == ()


async def test_a_failed_mcp_result_finishes_its_step_as_failed(
    client: ClaudeClient, claude: FakeAnthropic, docs: FakeMcpServer
) -> None:
    """An mcp_tool_result with is_error finishes the step as failed."""
    docs.mode = "fail"
    tools, extra = request_parts(McpServer("docs", docs.url, TOKEN))
    claude.reply_mcp_call("docs", "search_docs", {"query": "review"}, then="It failed.")
    seen: list[Progress] = []

    async def progress(event: Progress) -> None:
        seen.append(event)

    await client.step("sys", MESSAGES, tools, on_progress=progress, extra=extra)
    assert [(event.kind, event.error) for event in seen] == [("tool_started", False), ("tool_finished", True)]


async def test_a_server_the_api_cannot_use_is_dropped_and_the_call_asked_again(
    client: ClaudeClient, claude: FakeAnthropic, docs: FakeMcpServer, certificate: tuple[Path, Path]
) -> None:
    """The API refuses a request with a server that is down (400 naming it): the client asks again without that
    server and its toolset, keeps the other, and the step says which was dropped."""
    async with FakeMcpServer(*certificate, mode="down") as down:
        tools, extra = request_parts(McpServer("docs", docs.url, TOKEN), McpServer("wiki", down.url))
        claude.reply_text("answered without the wiki")
        step = await client.step("sys", MESSAGES, [{"name": "read_thread", "input_schema": {}}, *tools], extra=extra)
    assert step.mcp_dropped == ("wiki",)
    refused, retried = claude.requests
    assert [server["name"] for server in refused["mcp_servers"]] == ["docs", "wiki"]
    assert [server["name"] for server in retried["mcp_servers"]] == ["docs"]
    assert [tool.get("mcp_server_name") for tool in retried["tools"]] == [None, "docs"]


async def test_other_refusals_are_retried_once_without_servers_then_fail(
    client: ClaudeClient, claude: FakeAnthropic, docs: FakeMcpServer
) -> None:
    """A 400 that names no server may still be the API's refusal of one (its wording is not documented): the call
    is made once more without the servers; a refusal that had nothing to do with them comes back and fails the
    call, after two requests, never more."""
    tools, extra = request_parts(McpServer("docs", docs.url, TOKEN))
    for _ in range(2):
        claude.enqueue(Reply(status=400, error_type="invalid_request_error", error_message="prompt is too long"))
    with pytest.raises(ModelRequestError):
        await client.step("sys", MESSAGES, tools, extra=extra)
    assert len(claude.requests) == 2 and "mcp_servers" not in claude.requests[1]


async def test_a_refusal_of_a_field_of_ours_is_not_retried(
    client: ClaudeClient, claude: FakeAnthropic, docs: FakeMcpServer
) -> None:
    """A 400 about one of the request's fields is a bug of ours: dropping servers would only hide it."""
    tools, extra = request_parts(McpServer("docs", docs.url, TOKEN))
    claude.enqueue(Reply(status=400, error_type="invalid_request_error", error_message="messages.0: bad block"))
    with pytest.raises(ModelRequestError):
        await client.step("sys", MESSAGES, tools, extra=extra)
    assert len(claude.requests) == 1


async def test_token_counts_carry_the_servers(client: ClaudeClient, claude: FakeAnthropic, docs: FakeMcpServer) -> None:
    """count_tokens goes to the beta endpoint with the servers and the beta, so the toolset can be counted."""
    tools, extra = request_parts(McpServer("docs", docs.url, TOKEN))
    await client.count_tokens("sys", MESSAGES, tools, extra=extra)
    [counted] = claude.count_requests
    assert counted["mcp_servers"][0]["name"] == "docs"
