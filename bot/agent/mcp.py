"""Remote MCP servers, reached through Anthropic's MCP connector: the API itself connects to them, lists their tools,
calls them while it writes, and returns each call as an `mcp_tool_use` block followed by its `mcp_tool_result`.

A deployment names its servers in MCP_SERVERS (name, https URL, optional bearer token); a channel enables each one
as the tool "mcp:NAME" in its configuration (none is on by default). A request of a task that may use a server
carries it in `mcp_servers`, an `mcp_toolset` tool naming it, and the connector's beta header.

The API asks every server in a request for its tools before the model starts: a server that cannot be reached there
(down, refusing the token, too slow) makes the API refuse the whole request (400, naming the server). The call is
then made again without that server (bot/agent/client.py) and the step journals which servers were dropped, so that
the answer says so (`notes`), also after a resume. A call that fails later, while the model writes, comes back as an
`mcp_tool_result` with is_error, and the model goes on without it; the answer notes that too.

A token is a secret: it is never in a repr, an error, a log line or a Slack message (bot/runtime/logs.py redacts
the tokens from every log record, the SDK's DEBUG dumps of whole requests included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from bot.agent.setup import AgentSetup

# The connector's current version as Anthropic's MCP connector page names it (mcp-client-2025-04-04 is deprecated;
# the SDK also knows a newer one, mcp-client-2026-09-15, that the documentation does not describe yet).
MCP_BETA = "mcp-client-2025-11-20"
TOOL_PREFIX = "mcp:"
MAX_SERVERS = 10
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_URL_CHARS = 2_000
MAX_TOKEN_CHARS = 8_000


@dataclass(frozen=True)
class McpServer:
    """One remote MCP server of the deployment; its token stays out of every repr."""

    name: str
    url: str
    token: str = field(default="", repr=False)

    @property
    def tool(self) -> str:
        """The name a channel enables it by."""
        return TOOL_PREFIX + self.name

    def definition(self) -> dict[str, Any]:
        """The server as the request's `mcp_servers` takes it."""
        server: dict[str, Any] = {"type": "url", "url": self.url, "name": self.name}
        if self.token:
            server["authorization_token"] = self.token
        return server

    def toolset(self) -> dict[str, Any]:
        """Its `mcp_toolset` tool: every tool the server lists, enabled."""
        return {"type": "mcp_toolset", "mcp_server_name": self.name}


def parse_mcp_servers(raw: str) -> tuple[McpServer, ...]:
    """MCP_SERVERS: a JSON list of {"name", "url", "token"?}; ValueError says what is wrong, never with a token."""
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        # The position only: the text around it may be a token.
        raise ValueError(f"not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(entries, list):
        raise ValueError('must be a JSON list of {"name", "url", "token"} objects')
    if len(entries) > MAX_SERVERS:
        raise ValueError(f"at most {MAX_SERVERS} servers")
    servers = tuple(_server(index, entry) for index, entry in enumerate(entries))
    names = [server.name for server in servers]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"names must be unique: {', '.join(duplicates)}")
    return servers


def _server(index: int, entry: object) -> McpServer:
    where = f"server {index + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f'{where}: not an object with "name" and "url"')
    if unknown := sorted(set(entry) - {"name", "url", "token"}):
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)[:100]}")
    name, url, token = entry.get("name"), entry.get("url"), entry.get("token", "")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{where}: name must be 1 to 64 letters, digits, _ or -")
    where = f"server {name}"
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not _https(url):
        raise ValueError(f"{where}: url must be an https:// URL (the connector takes no other)")
    if token is None:
        token = ""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or any(char.isspace() for char in token):
        raise ValueError(f"{where}: token must be a string without spaces, of at most {MAX_TOKEN_CHARS} characters")
    return McpServer(name, url, token)


def _https(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and not any(char.isspace() for char in url)


class McpServers:
    """The deployment's MCP servers: the toolsets a channel may enable, and what a request of a setup carries."""

    def __init__(self, servers: Sequence[McpServer]) -> None:
        self._servers = {server.tool: server for server in servers}

    @property
    def toolsets(self) -> dict[str, dict[str, Any]]:
        """Each server's `mcp_toolset` by the tool name a channel enables ("mcp:NAME"): Anthropic runs them."""
        return {tool: server.toolset() for tool, server in self._servers.items()}

    def request_options(self, setup: AgentSetup) -> dict[str, Any]:
        """`mcp_servers` and the beta of a request made with this setup; nothing when it may use no server."""
        allowed = [server.definition() for tool, server in self._servers.items() if setup.allows(tool)]
        return {"mcp_servers": allowed, "betas": [MCP_BETA]} if allowed else {}


# A refusal of the request's own fields (a bug of ours, not a server's trouble) starts with the field's path.
FIELD_PROBLEM = re.compile(r"^\s*(?:mcp_servers|tools|messages|system|model|max_tokens|thinking|output_config)\b")


def refused_servers(error_body: object, request: Mapping[str, Any]) -> tuple[str, ...]:
    """The servers of `request` that a 400 from the API may blame: those its message quotes by name; every server
    of the request when it names none (the API's wording for a server it could not use is not documented, so any
    400 of a request with servers that is not about a field of ours counts: the call is made once more without
    them, and a refusal that had nothing to do with them comes back the same); () for a request without servers or
    a refusal of one of its fields, which dropping servers would only hide."""
    names = [str(server.get("name")) for server in request.get("mcp_servers") or () if isinstance(server, Mapping)]
    error = error_body.get("error") if isinstance(error_body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    if not names or (isinstance(message, str) and FIELD_PROBLEM.match(message)):
        return ()
    text = message if isinstance(message, str) else ""
    named = tuple(name for name in names if f"'{name}'" in text or f'"{name}"' in text)
    return named or tuple(names)


def without_servers(request: Mapping[str, Any], dropped: Iterable[str]) -> dict[str, Any]:
    """The request without these servers and their toolsets."""
    gone = set(dropped)
    servers = [server for server in request.get("mcp_servers") or () if server.get("name") not in gone]
    tools = request.get("tools")
    if isinstance(tools, list):
        tools = [
            tool for tool in tools if not (tool.get("type") == "mcp_toolset" and tool.get("mcp_server_name") in gone)
        ]
    smaller = {**request, "tools": tools}
    if tools == []:
        smaller.pop("tools")  # the request had only toolsets: it goes without tools, not with an empty list
    if servers:
        smaller["mcp_servers"] = servers
    else:
        smaller.pop("mcp_servers", None)
    # The beta stays, on the beta endpoint: the messages may hold mcp_tool_use blocks of the task's earlier calls,
    # which the API takes only with it.
    return smaller


def without_tools(setup: AgentSetup, dropped: Iterable[str]) -> AgentSetup:
    """The setup without the servers named (the tool names "mcp:NAME" of those servers)."""
    gone = {TOOL_PREFIX + name for name in dropped}
    if not gone & set(setup.tools):
        return setup
    return replace(setup, tools=tuple(tool for tool in setup.tools if tool not in gone))


def with_beta_for(messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
    """The request options, with the connector's beta when the messages replay MCP blocks of the task's earlier
    calls: without it the API does not know those blocks, even with no server left to call."""
    if MCP_BETA in (options.get("betas") or ()) or not any(
        isinstance(block, Mapping) and block.get("type") in ("mcp_tool_use", "mcp_tool_result")
        for message in messages
        if isinstance(message.get("content"), list)
        for block in message["content"]
    ):
        return dict(options)
    return {**options, "betas": [*(options.get("betas") or ()), MCP_BETA]}


def notes(contents: Iterable[Sequence[Mapping[str, Any]]], dropped: Iterable[str]) -> list[str]:
    """What the answer says of its MCP servers: those left out of a call (they did not answer when asked for their
    tools), and those whose last call failed or timed out. `contents` are the model steps' content blocks."""
    said: list[str] = []
    for name in dict.fromkeys(dropped):
        said.append(f"_(The MCP server {name} did not answer, so this answer was written without its tools.)_")
    calls: dict[str, tuple[str, str]] = {}  # mcp_tool_use id -> (server, tool)
    last: dict[str, tuple[str, bool]] = {}  # server -> (tool, failed) of its latest call
    for content in contents:
        for block in content:
            if block.get("type") == "mcp_tool_use":
                calls[str(block.get("id"))] = (str(block.get("server_name")), str(block.get("name")))
            elif block.get("type") == "mcp_tool_result" and str(block.get("tool_use_id")) in calls:
                server, tool = calls[str(block.get("tool_use_id"))]
                last[server] = (tool, bool(block.get("is_error")))
    for server, (tool, failed) in last.items():
        if failed:
            said.append(
                f"_(The MCP server {server} did not answer the call to {tool} (it failed or timed out); "
                "this answer was written without that result.)_"
            )
    return said
