"""In-process fake of the Anthropic Messages API (JSON and SSE streaming), scripted per test."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import re
import secrets
import string
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .mcp_connector import McpConnector, beta_header, request_problem
from .prompt_cache import PromptCache, cache_control_problem
from .server import LocalServer
from .thinking_api import ThinkingLedger, thinking_config_problem, without_thinking_if_off
from .tool_definitions import tools_problem

Body = dict[str, Any]
Responder = Callable[[Body], "Reply | Awaitable[Reply]"]
_ALPHABET = string.ascii_letters + string.digits
# HTTP status the API uses for each error type (529 is Anthropic's non-standard "overloaded").
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
# The API's size limits (docs: "Images and vision", and "Request size limits" in the API overview).
# Messages and Token Counting take requests up to "32 MB"; past it Cloudflare answers 413 before the API sees the
# request. The docs do not say MB or MiB: the fake takes the smaller, so that it is never kinder than the API.
MAX_REQUEST_BYTES = 32_000_000
# One image's base64 data (not its decoded bytes): the API's message reads "... > 5242880 bytes".
MAX_IMAGE_BASE64 = 5 * 1024 * 1024
# Images in one request, for models with a 200k-token window (others take 600): again the stricter figure.
MAX_IMAGES = 100
# Every current model reads at most this many tokens of input plus max_tokens of output in one request; the API
# refuses a longer prompt with a 400 before any generation. Images count about this much each (the API sizes them
# by pixels, at most ~1,600 tokens for an image it does not scale down).
CONTEXT_WINDOW = 200_000
IMAGE_TOKENS = 1_600
# The most output tokens one request may ask for (max_tokens); the fake holds every model id to it.
MAX_OUTPUT_TOKENS = 64_000
# Output is estimated like input: about four characters a token. A scripted answer longer than max_tokens is cut here.
CHARS_PER_TOKEN = 4
# Claude 4.6 and later models refuse a request that ends with an assistant message (a "prefill").
_PREFILL_REFUSED_FROM = (4, 6)
_MODEL_VERSION = re.compile(r"^claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d{1,2}))?(?:-\d{8})?$")


# Blocks that call a tool, streamed like tool_use: the input arrives as input_json_delta events.
CALL_BLOCKS = ("tool_use", "server_tool_use", "mcp_tool_use")


def _new_id(prefix: str) -> str:
    # Real ids look like "msg_01XFDUDYJgAACzvnptvVoYEL": a prefix, "01", then 22 base62 characters.
    return prefix + "01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


@dataclass
class Reply:
    """One scripted model turn: content blocks + stop_reason, or an API error."""

    content: list[Body] = field(default_factory=list)
    stop_reason: str | None = "end_turn"
    stop_sequence: str | None = None
    usage: dict[str, int] | None = None  # overrides for the estimated usage fields
    delay: float = 0.0  # seconds to wait before answering (other requests are served meanwhile)
    gate: asyncio.Event | None = None  # if set, the answer is held until the test sets the event
    chunk_size: int = 8  # characters per text_delta / input_json_delta when streaming
    chunk_delay: float = 0.0  # seconds between streamed delta events, to observe progressive output
    status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    stream_error: tuple[str, str] | None = None  # (type, message) sent as an `error` SSE event mid-stream

    @property
    def is_error(self) -> bool:
        """True when this reply is an HTTP error rather than a message."""
        return self.error_type is not None and self.stream_error is None


def _block_texts(content: Any) -> list[str]:
    """Text carried by a message's content (string or blocks), including tool_use input and tool results."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            texts.append(json.dumps(block.get("input", {})))
        elif kind == "tool_result":
            texts.extend(_block_texts(block.get("content", "")))
    return texts


def user_texts(request: Body) -> list[str]:
    """Flatten all text in a request (system prompt, then every message) for substring assertions."""
    texts = _block_texts(request.get("system", ""))
    for message in request.get("messages", []):
        texts.extend(_block_texts(message.get("content", "")))
    return [t for t in texts if t]


def estimate_tokens(request: Body) -> int:
    """Rough input token count: total characters of system + messages divided by 4 (at least 1)."""
    return max(1, sum(len(t) for t in user_texts(request)) // 4)


def prompt_tokens(request: Body) -> int:
    """Estimated input tokens as the API counts them against the context window: text (characters / 4),
    tool definitions, and a fixed cost per image (base64 data is not text the model reads)."""
    tools = len(json.dumps(request.get("tools", []))) // 4 if request.get("tools") else 0
    images = 0
    for message in request.get("messages", []):
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            images += isinstance(block, dict) and block.get("type") == "image"
    return estimate_tokens(request) + tools + images * IMAGE_TOKENS


def context_window_error(request: Body, window: int = CONTEXT_WINDOW) -> str | None:
    """The API's invalid_request_error message for a request that does not fit the model's window, else None."""
    tokens = prompt_tokens(request)
    if tokens > window:
        return f"prompt is too long: {tokens} tokens > {window} maximum"
    max_tokens = request.get("max_tokens")
    if isinstance(max_tokens, int) and tokens + max_tokens > window:
        return (
            f"input length and `max_tokens` exceed context limit: {tokens} + {max_tokens} > {window}, "
            "decrease input length or `max_tokens` and try again"
        )
    return None


def output_limit_error(request: Body) -> str | None:
    """The API's message for a max_tokens above the model's output limit, else None."""
    max_tokens = request.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > MAX_OUTPUT_TOKENS:
        return (
            f"max_tokens: {max_tokens} > {MAX_OUTPUT_TOKENS}, which is the maximum allowed number of output tokens "
            f"for {request.get('model')}"
        )
    return None


def refuses_prefill(model: Any) -> bool:
    """True for the model ids (Claude 4.6 and later) that refuse a conversation ending with an assistant turn."""
    match = _MODEL_VERSION.match(model) if isinstance(model, str) else None
    return match is not None and (int(match.group(1)), int(match.group(2) or 0)) >= _PREFILL_REFUSED_FROM


def _prefill_problem(body: Body) -> str | None:
    last = body["messages"][-1]
    if last.get("role") != "assistant":
        return None
    content = last.get("content")
    blocks = content if isinstance(content, list) else []
    if any(isinstance(block, dict) and block.get("type") in ("server_tool_use", "mcp_tool_use") for block in blocks):
        return None  # a turn paused by a server tool (pause_turn) is continued by sending it back as it was
    if refuses_prefill(body.get("model")):
        return "This model does not support assistant message prefill. The conversation must end with a user message."
    texts = _block_texts(last.get("content", ""))
    if texts and texts[-1] != texts[-1].rstrip():
        return "messages: final assistant content cannot end with trailing whitespace"
    return None


def _server_tool_use(content: list[Body]) -> Body:
    """The usage block's count of web searches the answer made (billed per search), as the API reports it."""
    searches = sum(
        1 for block in content if block.get("type") == "server_tool_use" and block.get("name") == "web_search"
    )
    return {"server_tool_use": {"web_search_requests": searches}} if searches else {}


def echo_responder(request: Body) -> Reply:
    """Default model: reply "echo: <last text of the last user message>"."""
    user_messages = [m for m in request.get("messages", []) if m.get("role") == "user"]
    texts = _block_texts(user_messages[-1].get("content", "")) if user_messages else []
    return Reply(content=[{"type": "text", "text": "echo: " + (texts[-1] if texts else "")}])


def validate_request(body: Body) -> str | None:
    """Return the API's invalid_request_error message for mistakes the real API rejects, else None."""
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        last_assistant = i == len(messages) - 1 and message["role"] == "assistant"
        if not content and not last_assistant:
            return f"messages.{i}: all messages must have non-empty content except for the optional final assistant"
        blocks = content if isinstance(content, list) else []
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return "messages: text content blocks must be non-empty"
        # Every tool_use must be answered by a tool_result in the very next (user) message, and vice versa.
        prev = messages[i - 1].get("content") if i > 0 else None
        prev_ids = {b.get("id") for b in prev if b.get("type") == "tool_use"} if isinstance(prev, list) else set()
        result_ids = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if prev_ids - result_ids:
            missing = ", ".join(sorted(str(x) for x in prev_ids - result_ids))
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}. "
                "Each `tool_use` block must have a corresponding `tool_result` block in the next message."
            )
        if result_ids - prev_ids:
            extra = ", ".join(sorted(str(x) for x in result_ids - prev_ids))
            return (
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {extra}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
    return (
        _prefill_problem(body)
        or image_problem(messages)
        or cache_control_problem(body)
        or tools_problem(body.get("tools"))
    )


def _image_blocks(messages: list[Body]) -> Iterator[tuple[str, Body]]:
    """Every image block of the messages with its path as the API names it, tool results' images included."""
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else []):
            if block.get("type") == "image":
                yield f"messages.{i}.content.{j}", block
            inner = block.get("content") if block.get("type") == "tool_result" else None
            for k, part in enumerate(inner if isinstance(inner, list) else []):
                if isinstance(part, dict) and part.get("type") == "image":
                    yield f"messages.{i}.content.{j}.tool_result.content.{k}", part


def image_problem(messages: list[Body]) -> str | None:
    """The API's message for an image whose base64 data is over 5 MB, or for too many images; else None."""
    count = 0
    for path, block in _image_blocks(messages):
        count += 1
        data = (block.get("source") or {}).get("data")
        if isinstance(data, str) and len(data) > MAX_IMAGE_BASE64:
            return (
                f"{path}.image.source.base64: image exceeds 5 MB maximum: {len(data)} bytes > {MAX_IMAGE_BASE64} bytes"
            )
    if count > MAX_IMAGES:
        return f"Too much media: 0 document pages + {count} images > {MAX_IMAGES}"
    return None


@dataclass(frozen=True)
class _Output:
    """What the model writes of a scripted reply within max_tokens."""

    content: list[Body]
    cut: bool  # stopped at max_tokens
    partial_json: str | None = None  # the input JSON a tool_use block cut short got to, streamed as it is


def _output_chars(block: Body) -> int:
    if block.get("type") == "text":
        return len(str(block.get("text", "")))
    if block.get("type") == "thinking":  # thinking is output: it counts toward max_tokens and is billed
        return len(str(block.get("thinking", "")))
    if block.get("type") == "redacted_thinking":
        return len(str(block.get("data", "")))
    if block.get("type") == "tool_use":
        return len(json.dumps(block.get("input", {})))
    return 0


def cut_to_max_tokens(content: list[Body], max_tokens: Any) -> _Output:
    """The reply's content as the API returns it within `max_tokens` output tokens (estimated at 4 characters each).

    A text block is cut where the budget ends; a tool_use block cut short is kept incomplete (its JSON stops where
    the budget ends; the non-streamed message gives it an empty input), as the API returns an unfinished tool call.
    """
    if not isinstance(max_tokens, int) or max_tokens <= 0:
        return _Output(content, cut=False)
    budget = max_tokens * CHARS_PER_TOKEN
    kept: list[Body] = []
    for block in content:
        size = _output_chars(block)
        if size <= budget:
            kept.append(block)
            budget -= size
        elif block.get("type") == "tool_use":
            partial = json.dumps(block.get("input", {}))[:budget]
            return _Output([*kept, {**block, "input": {}}], cut=True, partial_json=partial)
        elif block.get("type") == "thinking":  # cut while thinking: the signature comes only at a block's end
            return _Output([*kept, {**block, "thinking": block["thinking"][:budget], "signature": ""}], cut=True)
        elif block.get("type") == "redacted_thinking":
            return _Output(kept, cut=True)
        else:
            return _Output([*kept, {**block, "text": block["text"][:budget]}] if budget else kept, cut=True)
    return _Output(kept, cut=False)


def _thinking(text: str | None) -> list[Body]:
    """A scripted thinking block (the fake signs it when it writes it), or none."""
    return [{"type": "thinking", "thinking": text}] if text is not None else []


def _error_body(error_type: str, message: str, request_id: str) -> Body:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def _too_large() -> web.Response:
    # Cloudflare answers this before the API sees the request: no request id.
    error = {"type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}
    return web.json_response({"type": "error", "error": error}, status=ERROR_STATUS["request_too_large"])


def _sse(event: str, data: Body) -> bytes:
    # Each SSE event is "event: <name>" + "data: <json>" + blank line; the SDK dispatches on data["type"].
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class FakeAnthropic(LocalServer):
    """Fake Anthropic API: POST /v1/messages (JSON or SSE) and POST /v1/messages/count_tokens."""

    # Read a body past the API's limit, so that it gets the API's 413 rather than aiohttp's.
    client_max_size = 2 * MAX_REQUEST_BYTES

    def __init__(
        self, *, api_key: str | None = None, validate: bool = True, context_window: int = CONTEXT_WINDOW
    ) -> None:
        self.api_key = api_key  # None accepts any non-empty x-api-key
        self.validate = validate
        self.context_window = context_window
        self.requests: list[Body] = []
        self.request_headers: list[dict[str, str]] = []
        self.count_requests: list[Body] = []
        self.request_sizes: list[int] = []  # bytes of every request body received, refused ones included
        self._script: list[Reply | Responder] = []
        self._default: Responder = echo_responder
        self._gates: list[asyncio.Event] = []
        self.prompt_cache = PromptCache()
        self.thinking = ThinkingLedger()  # signs the thinking written, checks the thinking sent back
        self.usages: list[Body] = []  # the usage block of every message answered, in order
        self.mcp = McpConnector()  # the MCP connector: reaches the servers of a request's mcp_servers

    # ------------------------------------------------------------------ lifecycle

    def add_routes(self, app: web.Application) -> None:
        """The Messages API and its token counter."""
        app.router.add_post("/v1/messages", self._handle_messages)
        app.router.add_post("/v1/messages/count_tokens", self._handle_count_tokens)

    async def before_stop(self) -> None:
        """Release any gated replies first so no handler is left hanging."""
        for gate in self._gates:
            gate.set()

    @property
    def base_url(self) -> str:
        """URL for AsyncAnthropic(base_url=...); the SDK appends /v1/messages."""
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ scripting and inspection

    def enqueue(self, reply: Reply | Responder) -> None:
        """Queue a reply (or a one-shot responder) for the next /v1/messages request."""
        if isinstance(reply, Reply) and reply.gate is not None:
            self._gates.append(reply.gate)
        self._script.append(reply)

    def reply_text(
        self,
        text: str,
        *,
        stop_reason: str = "end_turn",
        delay: float = 0.0,
        usage: dict[str, int] | None = None,
        gate: asyncio.Event | None = None,
        thinking: str | None = None,
    ) -> Reply:
        """Queue a plain text answer (after a thinking block, written only when the request asks for thinking)."""
        content = [*_thinking(thinking), {"type": "text", "text": text}]
        reply = Reply(content, stop_reason, usage=usage, delay=delay, gate=gate)
        self.enqueue(reply)
        return reply

    def reply_tool_use(
        self,
        name: str,
        input: Body,
        *,
        tool_id: str | None = None,
        text_before: str | None = None,
        delay: float = 0.0,
        usage: dict[str, int] | None = None,
        thinking: str | None = None,
    ) -> Reply:
        """Queue a tool call (optionally preceded by thinking, written only when the request asks for it, and by
        text); stop_reason is "tool_use"."""
        content: list[Body] = _thinking(thinking)
        if text_before:
            content.append({"type": "text", "text": text_before})
        content.append({"type": "tool_use", "id": tool_id or _new_id("toolu_"), "name": name, "input": input})
        reply = Reply(content, "tool_use", usage=usage, delay=delay)
        self.enqueue(reply)
        return reply

    def reply_mcp_call(
        self, server: str, tool: str, input: Body, *, then: str = "", text_before: str | None = None
    ) -> Reply:
        """Queue an answer that calls a tool of an MCP server of the request (the connector calls it and inserts its
        mcp_tool_result), then writes `then`."""
        content: list[Body] = [{"type": "text", "text": text_before}] if text_before else []
        content.append(
            {"type": "mcp_tool_use", "id": _new_id("mcptoolu_"), "name": tool, "server_name": server, "input": input}
        )
        if then:
            content.append({"type": "text", "text": then})
        reply = Reply(content)
        self.enqueue(reply)
        return reply

    def reply_error(self, status: int, error_type: str, message: str, *, retry_after: float | None = None) -> Reply:
        """Queue an HTTP error with the API's {"type": "error", "error": {...}} body."""
        reply = Reply(status=status, error_type=error_type, error_message=message, retry_after=retry_after)
        self.enqueue(reply)
        return reply

    def reply_stream_error(self, text: str, error_type: str = "overloaded_error", message: str = "Overloaded") -> Reply:
        """Queue a streamed answer that breaks off with an `error` event after `text` (HTTP status for non-stream)."""
        reply = Reply(
            [{"type": "text", "text": text}],
            stream_error=(error_type, message),
            status=ERROR_STATUS.get(error_type, 500),
            error_type=error_type,
            error_message=message,
        )
        self.enqueue(reply)
        return reply

    def reply_with(self, fn: Responder) -> None:
        """Queue a one-shot dynamic responder fn(request_body) -> Reply."""
        self.enqueue(fn)

    def set_default(self, fn: Responder) -> None:
        """Replace the responder used when the script queue is empty."""
        self._default = fn

    @property
    def pending(self) -> int:
        """Number of scripted replies not yet consumed."""
        return len(self._script)

    @property
    def last_request(self) -> Body:
        """Body of the most recent /v1/messages request."""
        if not self.requests:
            raise AssertionError("FakeAnthropic has received no /v1/messages request")
        return self.requests[-1]

    user_texts = staticmethod(user_texts)

    # ------------------------------------------------------------------ HTTP handlers

    def _auth_error(self, request: web.Request, request_id: str) -> web.Response | None:
        # The API takes x-api-key; anthropic>=2 SDKs send the same key as "Authorization: Bearer <key>".
        key = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not key:
            message = "x-api-key header is required"
        elif self.api_key is not None and key != self.api_key:
            message = "invalid x-api-key"
        else:
            return None
        return web.json_response(
            _error_body("authentication_error", message, request_id), status=401, headers={"request-id": request_id}
        )

    async def _handle_count_tokens(self, request: web.Request) -> web.Response:
        request_id = _new_id("req_")
        body = await self._admitted(request, request_id)
        if isinstance(body, web.Response):
            return body
        self.count_requests.append(body)
        problem = request_problem(body, request.headers.get("anthropic-beta", ""))
        if problem is not None:
            error = _error_body("invalid_request_error", problem, request_id)
            return web.json_response(error, status=400, headers={"request-id": request_id})
        return web.json_response({"input_tokens": estimate_tokens(body)}, headers={"request-id": request_id})

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        request_id = _new_id("req_")
        headers = {"request-id": request_id}
        body = await self._admitted(request, request_id)
        if isinstance(body, web.Response):
            return body
        self.requests.append(body)
        # Header names are case-insensitive on the wire; store them lower-cased for easy lookups.
        self.request_headers.append({k.lower(): v for k, v in request.headers.items()})
        problem = self._problem(body)
        # Like the API, the connector lists every server's tools before the model starts: one that fails refuses all.
        opened = await self.mcp.open(body) if problem is None and body.get("mcp_servers") else []
        if isinstance(opened, str):
            problem = opened
        sessions = opened if isinstance(opened, list) else []
        if problem is not None:
            return web.json_response(
                _error_body("invalid_request_error", problem, request_id), status=400, headers=headers
            )
        item = self._script.pop(0) if self._script else self._default
        reply = item if isinstance(item, Reply) else item(body)
        if inspect.isawaitable(reply):
            reply = await reply
        if any(block.get("type") == "mcp_tool_use" for block in reply.content):
            reply = dataclasses.replace(reply, content=await self.mcp.run(sessions, reply.content))
        if reply.gate is not None:
            self._gates.append(reply.gate)
            await reply.gate.wait()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.is_error or (reply.stream_error is not None and not body.get("stream")):
            if reply.retry_after is not None:
                headers["retry-after"] = str(reply.retry_after)
            error = _error_body(reply.error_type or "api_error", reply.error_message or "", request_id)
            return web.json_response(error, status=reply.status, headers=headers)
        output = cut_to_max_tokens(without_thinking_if_off(body, reply.content), body.get("max_tokens"))
        message = self._message(body, reply, output)  # thinking counted in full, whatever display leaves of it
        message["content"] = self.thinking.signed(body, message["content"])
        self.thinking.wrote(message["content"])
        if body.get("stream"):
            return await self._stream(request, message, reply, headers, output.partial_json)
        return web.json_response(message, headers=headers)

    def _problem(self, body: Body) -> str | None:
        """The API's invalid_request_error message for the latest request, if it would refuse it."""
        problem = (validate_request(body) or thinking_config_problem(body)) if self.validate else None
        if problem is None and self.validate:
            problem = self.thinking.problem(body)
        if problem is None:  # checked even unvalidated: a fake that answers any size hides unbounded requests
            problem = output_limit_error(body) or context_window_error(body, self.context_window)
        return problem or request_problem(body, beta_header(self.request_headers[-1]))

    async def _admitted(self, request: web.Request, request_id: str) -> Body | web.Response:
        """The request's JSON, or the API's refusal: a missing or wrong key (401), a body over its size (413)."""
        denied = self._auth_error(request, request_id)
        if denied is not None:
            return denied
        body = await self._body(request)
        return _too_large() if body is None else body

    async def _body(self, request: web.Request) -> Body | None:
        """The request's JSON, or None when it is over the API's request size limit."""
        raw = await request.read()
        self.request_sizes.append(len(raw))
        if len(raw) > MAX_REQUEST_BYTES:
            return None
        body: Body = json.loads(raw)
        return body

    def _message(self, body: Body, reply: Reply, output: _Output) -> Body:
        output_chars = sum(_output_chars(block) for block in output.content) + len(output.partial_json or "")
        cached = self.prompt_cache.usage(body)
        if reply.usage and "cache_creation_input_tokens" in reply.usage:
            del cached["cache_creation"]  # a scripted write count without its split by TTL, as older responses had
        usage: Body = {
            # Split into uncached, cache-written and cache-read tokens as the API's prompt caching would.
            **cached,
            "output_tokens": body["max_tokens"] if output.cut else max(1, output_chars // CHARS_PER_TOKEN),
            **_server_tool_use(output.content),
            **(reply.usage or {}),
        }
        self.usages.append({**usage, "summary": "running summary" in json.dumps(body.get("system", ""))})
        return {
            "id": _new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": json.loads(json.dumps(output.content)),
            "stop_reason": "max_tokens" if output.cut else reply.stop_reason,
            "stop_sequence": None if output.cut else reply.stop_sequence,
            "usage": usage,
        }

    async def _stream(
        self,
        request: web.Request,
        message: Body,
        reply: Reply,
        headers: dict[str, str],
        partial_json: str | None = None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        usage = message["usage"]
        # message_start carries the message with empty content, null stop_reason and provisional usage.
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events: list[tuple[str, Body]] = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(message["content"]):
            if block["type"] in CALL_BLOCKS:
                # A call starts with empty input; the JSON arrives as input_json_delta partial_json strings.
                opening = {**block, "input": {}}
                cut_here = partial_json is not None and index == len(message["content"]) - 1
                written = partial_json if cut_here and partial_json is not None else json.dumps(block["input"])
                deltas = [
                    {"type": "input_json_delta", "partial_json": c} for c in ["", *_chunks(written, reply.chunk_size)]
                ]
            elif block["type"] == "thinking":
                # Thinking streams as thinking_delta events; its signature comes last, in one signature_delta.
                opening = {**block, "thinking": "", "signature": ""}
                pieces = _chunks(block["thinking"], reply.chunk_size) if block["thinking"] else []
                deltas = [{"type": "thinking_delta", "thinking": c} for c in pieces]
                if block["signature"]:
                    deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif block["type"] == "redacted_thinking":
                opening, deltas = block, []  # whole in its content_block_start, no deltas
            elif block["type"] == "text":
                opening = {**block, "text": ""}
                deltas = [{"type": "text_delta", "text": c} for c in _chunks(block.get("text", ""), reply.chunk_size)]
            else:  # a server tool's result (web_search_tool_result, mcp_tool_result...) arrives whole in its start
                opening, deltas = block, []
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})
            )
            if index == 0:
                events.append(("ping", {"type": "ping"}))
            events.extend(
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
            )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        if reply.stream_error is not None:
            # Overload during generation surfaces as an `error` event inside a 200 response.
            error = {"type": "error", "error": {"type": reply.stream_error[0], "message": reply.stream_error[1]}}
            events = [*events[:-1], ("error", error)]
        else:
            # message_delta usage counts are cumulative totals (the SDK overwrites, not adds). They carry no
            # cache_creation split (the SDK's MessageDeltaUsage has none): that comes in message_start only.
            delta_usage = {name: value for name, value in usage.items() if name != "cache_creation"}
            events.append(
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                        "usage": delta_usage,
                    },
                )
            )
            events.append(("message_stop", {"type": "message_stop"}))
        try:
            for name, data in events:
                if name == "content_block_delta" and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                await response.write(_sse(name, data))
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away mid-stream; nothing left to do
        return response


__all__ = [
    "CONTEXT_WINDOW",
    "ERROR_STATUS",
    "MAX_IMAGES",
    "MAX_IMAGE_BASE64",
    "MAX_OUTPUT_TOKENS",
    "MAX_REQUEST_BYTES",
    "FakeAnthropic",
    "Reply",
    "cut_to_max_tokens",
    "echo_responder",
    "estimate_tokens",
    "output_limit_error",
    "prompt_tokens",
    "refuses_prefill",
    "user_texts",
]
