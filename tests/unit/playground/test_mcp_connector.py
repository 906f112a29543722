"""The fake API's MCP connector: it reaches a real MCP server over TLS as the API would, and refuses what it refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaMCPToolResultBlock, BetaMCPToolUseBlock

from tests.fakes import FakeAnthropic, FakeMcpServer, self_signed_certificate

MODEL = "claude-test-model"
BETA = "mcp-client-2025-11-20"
TOKEN = "mcp-secret-token-123"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed certificate for 127.0.0.1 for the module's servers."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def server(certificate: tuple[Path, Path]) -> AsyncIterator[FakeMcpServer]:
    """An MCP server that wants TOKEN."""
    async with FakeMcpServer(*certificate, token=TOKEN) as mcp:
        yield mcp


@pytest.fixture
async def fake_api(certificate: tuple[Path, Path]) -> AsyncIterator[FakeAnthropic]:
    """The fake API, its connector trusting the test certificate and giving up on a server after half a second."""
    async with FakeAnthropic() as fake:
        fake.mcp.trust(str(certificate[0]))
        fake.mcp.timeout = 0.5
        yield fake


@pytest.fixture
async def claude(fake_api: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="test", max_retries=0) as client:
        yield client


def request(url: str, *, name: str = "docs", token: str | None = TOKEN) -> dict[str, Any]:
    """A request with one MCP server and its toolset."""
    server: dict[str, Any] = {"type": "url", "url": url, "name": name}
    if token is not None:
        server["authorization_token"] = token
    return {
        "model": MODEL,
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "find the design review"}],
        "mcp_servers": [server],
        "tools": [{"type": "mcp_toolset", "mcp_server_name": name}],
        "betas": [BETA],
    }


async def test_a_scripted_mcp_call_reaches_the_server_over_tls_with_the_token(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, server: FakeMcpServer
) -> None:
    """The connector initializes a session, lists the tools and calls the one the reply uses, each with the bearer
    token and the session id; the answer holds the call and its result, then the text."""
    fake_api.reply_mcp_call("docs", "search_docs", {"query": "design review"}, then="It is owned by Dana.")
    message = await claude.beta.messages.create(**request(server.url))
    use, result, text = message.content
    assert isinstance(use, BetaMCPToolUseBlock) and use.server_name == "docs" and use.name == "search_docs"
    assert isinstance(result, BetaMCPToolResultBlock) and result.tool_use_id == use.id and not result.is_error
    assert "design-review-2026.md" in str(result.content)
    assert text.type == "text"
    assert [seen.method for seen in server.seen] == [
        "initialize",
        "notifications/initialized",
        "tools/list",
        "tools/call",
    ]
    assert {seen.authorization for seen in server.seen} == {f"Bearer {TOKEN}"}
    [call] = server.calls()
    assert call.params == {"name": "search_docs", "arguments": {"query": "design review"}}
    assert call.session is not None


async def test_a_streamed_answer_from_an_sse_server_carries_the_same_blocks(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, certificate: tuple[Path, Path]
) -> None:
    """A server answering with SSE streams works too, and the streamed answer builds the same blocks."""
    async with FakeMcpServer(*certificate, sse=True) as mcp:
        fake_api.reply_mcp_call("docs", "echo", {"text": "hi"}, then="Done.")
        async with claude.beta.messages.stream(**request(mcp.url, token=None)) as stream:
            message = await stream.get_final_message()
    use, result, _text = message.content
    assert isinstance(use, BetaMCPToolUseBlock) and use.input == {"text": "hi"}
    assert isinstance(result, BetaMCPToolResultBlock) and "hi" in str(result.content)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda body: body.pop("betas"), "anthropic-beta"),
        (lambda body: body["mcp_servers"][0].update(url="http://127.0.0.1:1/mcp"), "https://"),
        (lambda body: body["mcp_servers"].append(dict(body["mcp_servers"][0])), "unique"),
        (lambda body: body["tools"][0].update(mcp_server_name="other"), "not defined"),
        (lambda body: body.pop("tools"), "exactly one"),
    ],
)
async def test_misused_connector_is_refused(
    claude: anthropic.AsyncAnthropic, server: FakeMcpServer, change: Any, complaint: str
) -> None:
    """No beta header, a URL that is not https, two servers of one name, a toolset of an unknown server, a server
    without its toolset: a 400 before any server is contacted."""
    body = request(server.url)
    change(body)
    with pytest.raises(anthropic.BadRequestError, match=complaint):
        await claude.beta.messages.create(**body)
    assert server.seen == []


@pytest.mark.parametrize(
    ("mode", "token", "complaint"), [("down", TOKEN, "Could not connect"), ("ok", "wrong", "Authentication")]
)
async def test_a_server_that_cannot_list_its_tools_fails_the_request_naming_it(
    fake_api: FakeAnthropic,
    claude: anthropic.AsyncAnthropic,
    server: FakeMcpServer,
    mode: Any,
    token: str,
    complaint: str,
) -> None:
    """A server that is down or refuses the token fails the whole request (400, naming the server); the scripted
    reply is left for the next request."""
    server.mode = mode
    fake_api.reply_text("unused")
    with pytest.raises(anthropic.BadRequestError, match=f"{complaint}.*MCP server 'docs'"):
        await claude.beta.messages.create(**request(server.url, token=token))
    assert fake_api.pending == 1


@pytest.mark.parametrize("mode", ["hang", "fail", "tool_error"])
async def test_a_call_that_fails_or_times_out_is_an_error_result(
    fake_api: FakeAnthropic, claude: anthropic.AsyncAnthropic, server: FakeMcpServer, mode: Any
) -> None:
    """A tools/call that hangs past the timeout, fails, or returns isError gives an is_error result, not a failed
    request."""
    server.mode = mode
    fake_api.reply_mcp_call("docs", "search_docs", {"query": "q"}, then="The search failed.")
    message = await claude.beta.messages.create(**request(server.url))
    result = message.content[1]
    assert isinstance(result, BetaMCPToolResultBlock) and result.is_error
    assert message.stop_reason == "end_turn"
