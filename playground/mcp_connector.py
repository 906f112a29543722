"""The fake Anthropic API's MCP connector: what the real API does with a request's `mcp_servers`.

The real API refuses a request that misuses the connector (no beta header, a URL that is not https, two servers of
one name, a toolset for a server the request does not define, a server no toolset uses, MCP blocks in the messages
without the beta), and asks each server for its tools before the model starts: a server it cannot reach, that
refuses the token or does not answer in time fails the whole request with a 400 naming it. While the model writes,
each `mcp_tool_use` is a `tools/call` on the server, and its answer comes back as the `mcp_tool_result` block right
after it; a call that fails or times out gives a result with is_error, and the model goes on.

Here the scripted reply stands for the model: each `mcp_tool_use` block in it is called on its server, over the MCP
streamable HTTP transport (JSON-RPC 2.0 over POST, JSON or SSE answers, Mcp-Session-Id), with the server's token as
a bearer token, and its result inserted after it.
"""

from __future__ import annotations

import itertools
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

Body = dict[str, Any]
# The connector version the fake implements (the documentation's current one: toolsets in `tools`).
MCP_BETA = "mcp-client-2025-11-20"
PROTOCOL_VERSION = "2025-06-18"
MCP_BLOCKS = ("mcp_tool_use", "mcp_tool_result")


class McpFailure(Exception):
    """A server could not be used: unreachable, refusing the token, answering with an error, or too slow."""

    def __init__(self, message: str, *, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth


def request_problem(body: Body, betas: str) -> str | None:
    """The API's invalid_request_error message for a request that misuses the MCP connector, else None."""
    servers = body.get("mcp_servers")
    toolsets = [
        tool for tool in body.get("tools") or () if isinstance(tool, dict) and tool.get("type") == "mcp_toolset"
    ]
    uses_blocks = any(
        isinstance(block, dict) and block.get("type") in MCP_BLOCKS
        for message in body.get("messages") or ()
        for block in (message.get("content") if isinstance(message.get("content"), list) else ())
    )
    if not (servers or toolsets or uses_blocks):
        return None
    if MCP_BETA not in [beta.strip() for beta in betas.split(",")]:
        field_name = "mcp_servers" if servers else "tools" if toolsets else "messages"
        return f"{field_name}: this feature needs the anthropic-beta header {MCP_BETA}"
    names: list[str] = []
    for index, server in enumerate(servers or ()):
        if not isinstance(server, dict) or server.get("type") != "url" or not isinstance(server.get("name"), str):
            return f"mcp_servers.{index}: a server needs type 'url', a name and a url"
        if not str(server.get("url", "")).startswith("https://"):
            return f"mcp_servers.{index}.url: the URL must start with https://"
        names.append(server["name"])
    if len(set(names)) != len(names):
        return "mcp_servers: server names must be unique"
    referenced = [str(toolset.get("mcp_server_name")) for toolset in toolsets]
    for name in referenced:
        if name not in names:
            return f"tools: mcp_toolset references MCP server '{name}', which is not defined in mcp_servers"
    for name in names:
        if referenced.count(name) != 1:
            return f"mcp_servers: MCP server '{name}' must be referenced by exactly one mcp_toolset"
    return None


@dataclass
class _Session:
    """One MCP session with one server, for one request."""

    name: str
    url: str
    token: str | None
    id: str | None = None
    version: str = PROTOCOL_VERSION
    tools: list[Body] = field(default_factory=list)


class McpConnector:
    """Connects to the MCP servers of a request the way the API does; `ssl` is what it trusts (a test's own CA)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        self.ssl_context = ssl_context
        self.timeout = timeout  # per MCP request, as the API gives up on a slow server
        self._ids = itertools.count(1)

    def trust(self, cert: str) -> None:
        """Trust servers whose certificate is (or is signed by) this PEM file."""
        self.ssl_context = ssl.create_default_context(cafile=cert)

    async def open(self, body: Body) -> list[_Session] | str:
        """Sessions with every server of the request, their tools listed; or the API's 400 message for the first
        server that failed."""
        sessions: list[_Session] = []
        async with self._client() as client:
            for server in body.get("mcp_servers") or ():
                session = _Session(server["name"], server["url"], server.get("authorization_token"))
                try:
                    await self._initialize(client, session)
                    listed = await self._request(client, session, "tools/list", {})
                except McpFailure as exc:
                    if exc.auth:
                        return f"Authentication failed for MCP server '{session.name}': check its authorization token."
                    return f"Could not connect to MCP server '{session.name}': {exc}"
                session.tools = list(listed.get("tools") or [])
                sessions.append(session)
        return sessions

    async def run(self, sessions: list[_Session], content: list[Body]) -> list[Body]:
        """The reply's content with the result of each mcp_tool_use block right after it."""
        by_name = {session.name: session for session in sessions}
        done: list[Body] = []
        async with self._client() as client:
            for block in content:
                done.append(block)
                if block.get("type") == "mcp_tool_use":
                    done.append(await self._call(client, by_name.get(str(block.get("server_name"))), block))
            for session in sessions:
                await self._close(client, session)
        return done

    async def _call(self, client: aiohttp.ClientSession, session: _Session | None, block: Body) -> Body:
        result: Body = {"type": "mcp_tool_result", "tool_use_id": block["id"], "is_error": True}
        if session is None or block.get("name") not in {tool.get("name") for tool in session.tools}:
            return {**result, "content": [{"type": "text", "text": f"Tool {block.get('name')} not found"}]}
        try:
            answer = await self._request(
                client, session, "tools/call", {"name": block["name"], "arguments": block.get("input") or {}}
            )
        except McpFailure as exc:
            return {**result, "content": [{"type": "text", "text": f"Error calling tool {block['name']}: {exc}"}]}
        texts = [part for part in answer.get("content") or () if isinstance(part, dict) and part.get("type") == "text"]
        blocks = [{"type": "text", "text": str(part.get("text", ""))} for part in texts]
        return {**result, "is_error": bool(answer.get("isError")), "content": blocks}

    def _client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True),
        )

    async def _initialize(self, client: aiohttp.ClientSession, session: _Session) -> None:
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "fake-anthropic-mcp-connector", "version": "1.0"},
        }
        result = await self._request(client, session, "initialize", params)
        session.version = str(result.get("protocolVersion") or PROTOCOL_VERSION)
        await self._post(client, session, {"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def _close(self, client: aiohttp.ClientSession, session: _Session) -> None:
        if session.id is None:
            return
        try:
            async with client.delete(session.url, headers=self._headers(session)):
                pass
        except (aiohttp.ClientError, TimeoutError):
            pass  # a courtesy: the server forgets idle sessions anyway

    async def _request(self, client: aiohttp.ClientSession, session: _Session, method: str, params: Body) -> Body:
        call_id = next(self._ids)
        answer = await self._post(
            client, session, {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}
        )
        if not isinstance(answer, dict) or answer.get("id") != call_id:
            raise McpFailure(f"no answer to {method}")
        if "error" in answer:
            raise McpFailure(f"{method} failed: {str(answer['error'].get('message'))[:200]}")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise McpFailure(f"{method}: the answer has no result")
        return result

    async def _post(self, client: aiohttp.ClientSession, session: _Session, message: Body) -> Body | None:
        try:
            async with client.post(session.url, json=message, headers=self._headers(session)) as response:
                if response.status in (401, 403):
                    raise McpFailure("the server refused the authorization token", auth=True)
                if response.status == 202:
                    return None
                if response.status >= 400:
                    raise McpFailure(f"HTTP {response.status}")
                if "Mcp-Session-Id" in response.headers:
                    session.id = response.headers["Mcp-Session-Id"]
                if response.content_type == "text/event-stream":
                    return _from_sse(await response.text(), message.get("id"))
                answer = await response.json()
                return answer if isinstance(answer, dict) else None
        except TimeoutError:
            raise McpFailure("timed out") from None
        except aiohttp.ClientError as exc:
            raise McpFailure(type(exc).__name__) from None

    def _headers(self, session: _Session) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream"}
        if session.token:
            headers["Authorization"] = f"Bearer {session.token}"
        if session.id is not None:
            headers["Mcp-Session-Id"] = session.id
            headers["MCP-Protocol-Version"] = session.version
        return headers


def _from_sse(text: str, call_id: Any) -> Body | None:
    """The JSON-RPC response to `call_id` among the events of an SSE stream."""
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
        if not data:
            continue
        try:
            message = json.loads(data)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == call_id:
            return message
    return None


def beta_header(headers: Mapping[str, str]) -> str:
    """The anthropic-beta header of a request ("" without one)."""
    return headers.get("anthropic-beta", "")


__all__ = ["MCP_BETA", "McpConnector", "McpFailure", "beta_header", "request_problem"]
