"""A small remote MCP server for tests: the MCP streamable HTTP transport (JSON-RPC 2.0 over POST), over TLS.

It speaks what a client such as Anthropic's MCP connector relies on: `initialize` (protocol version negotiated, an
Mcp-Session-Id given), the `notifications/initialized` notification (202, no body), then `tools/list` and
`tools/call` on that session, each answered as JSON or, with `sse=True`, as an SSE stream. It checks a bearer token
when it has one (401 with WWW-Authenticate), refuses a request without the session or with an unknown one (400 /
404), and a `tools/*` request before the session is initialized. `mode` makes it misbehave: "fail" answers
tools/call with HTTP 500, "hang" never answers tools/call, "tool_error" returns a result with isError, "down" answers
everything with 503. Every request it takes is recorded in `seen`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from .server import LocalServer

Mode = Literal["ok", "fail", "hang", "tool_error", "down"]
# Newest first: a client asking for one of these gets it, any other gets the newest.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

TOOLS = [
    {
        "name": "search_docs",
        "description": "Search the team's documents; returns the titles that match.",
        "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
    {
        "name": "echo",
        "description": "Returns its text.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A fresh certificate (and its key) for 127.0.0.1, made with openssl: what a test's TLS server serves and its
    client trusts."""
    openssl = shutil.which("openssl")
    assert openssl, "these tests need openssl"
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    request += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run([openssl, *request], check=True, capture_output=True)
    return cert, key


@dataclass(frozen=True)
class Seen:
    """One request the server took: its JSON-RPC method, params, and the Authorization header it carried."""

    method: str
    params: dict[str, Any]
    authorization: str | None
    session: str | None


class FakeMcpServer(LocalServer):
    """A remote MCP server on https://127.0.0.1:PORT/mcp, with two tools (search_docs, echo)."""

    def __init__(
        self, cert: Path, key: Path, *, token: str | None = None, mode: Mode = "ok", sse: bool = False
    ) -> None:
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(str(cert), str(key))
        self.token = token
        self.mode: Mode = mode
        self.sse = sse
        self.seen: list[Seen] = []
        self._sessions: dict[str, bool] = {}  # session id -> initialized
        self._hanging = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        """The MCP endpoint; GET (a stream of server messages) is not offered, as the spec allows (405)."""
        app.router.add_post("/mcp", self._post)
        app.router.add_delete("/mcp", self._delete)

    async def start(self, port: int = 0) -> None:
        """Serve over TLS on 127.0.0.1."""
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self._tls).start()
        self._port = self._runner.addresses[0][1]

    async def before_stop(self) -> None:
        """Let a hanging call end."""
        self._hanging.set()

    @property
    def url(self) -> str:
        """The server's URL, as MCP_SERVERS names it."""
        return f"https://127.0.0.1:{self._port}/mcp"

    def calls(self, method: str = "tools/call") -> list[Seen]:
        """The requests of one method, in order."""
        return [seen for seen in self.seen if seen.method == method]

    async def _delete(self, request: web.Request) -> web.Response:
        self._sessions.pop(request.headers.get("Mcp-Session-Id", ""), None)
        return web.Response(status=204)

    async def _post(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            message = json.loads(await request.read())
        except ValueError:
            return web.json_response(_error(None, PARSE_ERROR, "Parse error"), status=400)
        if not _is_message(message):
            return web.json_response(_error(None, INVALID_REQUEST, "Invalid Request"), status=400)
        method, params, session = message["method"], message.get("params") or {}, request.headers.get("Mcp-Session-Id")
        self.seen.append(Seen(method, params, request.headers.get("Authorization"), session))
        if method == "initialize":
            return self._initialize(message)
        wrong = self._session_problem(session, request.headers.get("MCP-Protocol-Version"))
        if wrong is not None:
            return web.json_response(_error(message.get("id"), INVALID_REQUEST, wrong[1]), status=wrong[0])
        assert session is not None
        if "id" not in message:  # a notification
            if method == "notifications/initialized":
                self._sessions[session] = True
            return web.Response(status=202)
        if not self._sessions[session]:
            return web.json_response(_error(message["id"], INVALID_REQUEST, "Session not initialized"), status=400)
        return await self._answer(request, message["id"], method, params)

    def _refused(self, request: web.Request) -> web.Response | None:
        """The HTTP refusal of a request before its body is read: down, a wrong token, a wrong Accept header."""
        if self.mode == "down":
            return web.Response(status=503, text="down for maintenance")
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        accept = request.headers.get("Accept", "")
        if "application/json" not in accept or "text/event-stream" not in accept:
            return web.Response(status=406, text="Accept must list application/json and text/event-stream")
        return None

    def _session_problem(self, session: str | None, version: str | None) -> tuple[int, str] | None:
        """(HTTP status, message) for a request after initialize without a known session or with a bad version."""
        if session is None:
            return 400, "Mcp-Session-Id required"
        if session not in self._sessions:
            return 404, "Session not found"
        if version is not None and version not in PROTOCOL_VERSIONS:
            return 400, "Unsupported protocol version"
        return None

    def _initialize(self, message: dict[str, Any]) -> web.Response:
        asked = (message.get("params") or {}).get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        session = secrets.token_hex(16)
        self._sessions[session] = False
        result = {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "test-docs", "version": "1.0.0"},
        }
        return web.json_response(_result(message.get("id"), result), headers={"Mcp-Session-Id": session})

    async def _answer(
        self, request: web.Request, call_id: Any, method: str, params: dict[str, Any]
    ) -> web.StreamResponse:
        if method == "ping":
            return await self._reply(request, _result(call_id, {}))
        if method == "tools/list":
            return await self._reply(request, _result(call_id, {"tools": TOOLS}))
        if method != "tools/call":
            return await self._reply(request, _error(call_id, METHOD_NOT_FOUND, f"Method not found: {method}"))
        if self.mode == "fail":
            return web.Response(status=500, text="internal error")
        if self.mode == "hang":
            await self._hanging.wait()
            return web.Response(status=503)
        name, arguments = params.get("name"), params.get("arguments") or {}
        if name not in {tool["name"] for tool in TOOLS} or not isinstance(arguments, dict):
            return await self._reply(request, _error(call_id, INVALID_PARAMS, f"Unknown tool: {name}"))
        if self.mode == "tool_error":
            result = {"content": [{"type": "text", "text": "the index is being rebuilt"}], "isError": True}
        elif name == "search_docs":
            text = f"1 document matches {str(arguments.get('query'))!r}: design-review-2026.md (owner: Dana)"
            result = {"content": [{"type": "text", "text": text}], "isError": False}
        else:
            result = {"content": [{"type": "text", "text": str(arguments.get("text"))}], "isError": False}
        return await self._reply(request, _result(call_id, result))

    async def _reply(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if not self.sse:
            return web.json_response(body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(f"event: message\ndata: {json.dumps(body)}\n\n".encode())
        await response.write_eof()
        return response


def _is_message(message: object) -> bool:
    return isinstance(message, dict) and message.get("jsonrpc") == "2.0" and isinstance(message.get("method"), str)


def _result(call_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "result": result}


def _error(call_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}
