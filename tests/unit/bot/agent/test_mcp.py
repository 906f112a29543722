"""MCP servers: MCP_SERVERS parsed and checked, the request fields of a setup, refusals, and the answer's notes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.agent.mcp import (
    MCP_BETA,
    McpServer,
    McpServers,
    notes,
    parse_mcp_servers,
    refused_servers,
    with_beta_for,
    without_servers,
    without_tools,
)
from bot.agent.setup import AgentSetup
from bot.agent.steps import ModelStep, parse_step
from store.models import Usage

TOKEN = "s3cr3t-mcp-token"
DOCS = {"name": "docs", "url": "https://mcp.example.com/mcp", "token": TOKEN}
WIKI = {"name": "wiki", "url": "https://wiki.example.com/mcp"}


def test_servers_parse_with_an_optional_token_kept_out_of_the_repr() -> None:
    """A JSON list of name, https URL and optional token; the token never shows in a repr."""
    docs, wiki = parse_mcp_servers(json.dumps([DOCS, WIKI]))
    assert (docs.name, docs.url, docs.token, docs.tool) == ("docs", DOCS["url"], TOKEN, "mcp:docs")
    assert wiki.token == ""
    assert TOKEN not in repr(docs)
    assert parse_mcp_servers("") == ()


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        ([{**DOCS, "url": "http://mcp.example.com/mcp"}], "https"),
        ([DOCS, {**WIKI, "name": "docs"}], "unique"),
        ([{**DOCS, "name": "my docs"}], "name"),
        ([{**DOCS, "extra": 1}], "unknown"),
        ([{**DOCS, "token": f"{TOKEN} x"}], "token"),
        ([{**WIKI, "name": f"s{n}"} for n in range(11)], "at most 10"),
        ({"docs": DOCS}, "list"),
    ],
)
def test_bad_servers_are_refused_without_showing_a_token(entries: Any, complaint: str) -> None:
    """Not https, a repeated or odd name, an unknown field, a token with a space, too many servers, not a list:
    each is refused with a message that names the problem and never the token."""
    with pytest.raises(ValueError, match=complaint) as refused:
        parse_mcp_servers(json.dumps(entries))
    assert TOKEN not in str(refused.value)


def test_a_json_error_names_the_position_not_the_text() -> None:
    """Broken JSON is refused by line and column, without quoting the text around (it may be a token)."""
    with pytest.raises(ValueError, match="line 1") as refused:
        parse_mcp_servers(f'[{{"name": "docs", "token": "{TOKEN}"')
    assert TOKEN not in str(refused.value)


def test_a_request_carries_only_the_servers_its_setup_allows() -> None:
    """The servers of the setup's "mcp:NAME" tools, with their tokens, and the beta; nothing without any."""
    servers = McpServers([McpServer("docs", DOCS["url"], TOKEN), McpServer("wiki", WIKI["url"])])
    assert servers.toolsets == {
        "mcp:docs": {"type": "mcp_toolset", "mcp_server_name": "docs"},
        "mcp:wiki": {"type": "mcp_toolset", "mcp_server_name": "wiki"},
    }
    options = servers.request_options(AgentSetup(tools=("web_search", "mcp:docs")))
    assert options == {
        "mcp_servers": [{"type": "url", "url": DOCS["url"], "name": "docs", "authorization_token": TOKEN}],
        "betas": [MCP_BETA],
    }
    assert servers.request_options(AgentSetup(tools=("web_search",))) == {}


def refusal(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


REQUEST: dict[str, Any] = {
    "model": "m",
    "tools": [
        {"name": "read_thread"},
        {"type": "mcp_toolset", "mcp_server_name": "docs"},
        {"type": "mcp_toolset", "mcp_server_name": "wiki"},
    ],
    "mcp_servers": [{"type": "url", "name": "docs", "url": "u1"}, {"type": "url", "name": "wiki", "url": "u2"}],
    "betas": [MCP_BETA],
}


def test_a_refusal_blames_the_servers_it_names_or_all_when_it_names_none() -> None:
    """A 400 of a request with servers blames the server it quotes, else all of them (the API's wording for a server
    it could not use is not documented: the call is made once more without them); a refusal of one of the request's
    own fields blames none (dropping servers would hide a bug of ours), nor does anything a request without servers
    gets."""
    assert refused_servers(refusal("Could not connect to MCP server 'wiki': timed out"), REQUEST) == ("wiki",)
    assert refused_servers(refusal("An MCP server failed to respond"), REQUEST) == ("docs", "wiki")
    assert refused_servers(refusal("upstream https://wiki.example.com/mcp: 401"), REQUEST) == ("docs", "wiki")
    assert (
        refused_servers(refusal("tools: mcp_toolset references MCP server 'docs', which is not defined"), REQUEST) == ()
    )
    assert refused_servers(refusal("messages.3.content: unexpected block"), REQUEST) == ()
    assert refused_servers(refusal("MCP server 'docs' failed"), {"model": "m"}) == ()


def test_a_request_without_servers_keeps_the_rest_and_the_beta() -> None:
    """Dropping a server drops its toolset; dropping all drops mcp_servers, and a request of toolsets only loses its
    tools; the beta stays (earlier MCP blocks in the messages need it)."""
    smaller = without_servers(REQUEST, ["wiki"])
    assert smaller["mcp_servers"] == [REQUEST["mcp_servers"][0]]
    assert smaller["tools"] == REQUEST["tools"][:2]
    none_left = without_servers(REQUEST, ["docs", "wiki"])
    assert "mcp_servers" not in none_left and none_left["tools"] == [{"name": "read_thread"}]
    assert none_left["betas"] == [MCP_BETA]
    only_toolsets = without_servers({**REQUEST, "tools": REQUEST["tools"][1:]}, ["docs", "wiki"])
    assert "tools" not in only_toolsets
    assert without_tools(AgentSetup(tools=("mcp:docs", "mcp:wiki", "web_search")), ["docs"]).tools == (
        "mcp:wiki",
        "web_search",
    )


def use(call_id: str, server: str, tool: str) -> dict[str, Any]:
    return {"type": "mcp_tool_use", "id": call_id, "name": tool, "server_name": server, "input": {}}


def result(call_id: str, *, error: bool) -> dict[str, Any]:
    return {
        "type": "mcp_tool_result",
        "tool_use_id": call_id,
        "is_error": error,
        "content": [{"type": "text", "text": "x"}],
    }


def test_notes_name_dropped_servers_and_those_whose_last_call_failed() -> None:
    """A dropped server is noted once; a server whose last call failed is noted with the tool; one that failed,
    then answered, is not."""
    contents = [
        [use("a", "docs", "search"), result("a", error=True), use("b", "docs", "search"), result("b", error=False)],
        [use("c", "wiki", "lookup"), result("c", error=True)],
    ]
    said = notes(contents, ["tickets", "tickets"])
    assert said == [
        "_(The MCP server tickets did not answer, so this answer was written without its tools.)_",
        "_(The MCP server wiki did not answer the call to lookup (it failed or timed out); "
        "this answer was written without that result.)_",
    ]


def test_a_model_step_journals_the_servers_it_was_made_without() -> None:
    """mcp_dropped goes into the record only when set, and comes back from it."""
    step = ModelStep([{"type": "text", "text": "hi"}], "end_turn", Usage(), ("docs",))
    record = step.to_record()
    assert record["mcp_dropped"] == ["docs"]
    assert parse_step(record) == step
    plain = ModelStep([{"type": "text", "text": "hi"}], "end_turn", Usage())
    assert "mcp_dropped" not in plain.to_record() and parse_step(plain.to_record()) == plain


def test_the_beta_stays_while_the_messages_hold_mcp_blocks() -> None:
    """A request whose servers were all left out still asks for the beta if it replays earlier MCP blocks."""
    plain = [{"role": "user", "content": "hi"}]
    replayed = [*plain, {"role": "assistant", "content": [use("a", "docs", "search"), result("a", error=False)]}]
    assert with_beta_for(plain, {}) == {}
    assert with_beta_for(replayed, {}) == {"betas": [MCP_BETA]}
    assert with_beta_for(replayed, {"betas": [MCP_BETA], "mcp_servers": []}) == {"betas": [MCP_BETA], "mcp_servers": []}
