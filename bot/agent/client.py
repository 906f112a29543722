"""The Claude client: the one module that imports anthropic, and the one place model calls are retried."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import anthropic
from anthropic.resources.beta.messages import AsyncMessages as AsyncBetaMessages
from anthropic.resources.messages import AsyncMessages
from anthropic.types import MessageParam, TextBlockParam, ToolUnionParam
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_before_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from bot.agent.mcp import refused_servers, without_servers
from bot.agent.pricing import cost_usd
from bot.agent.progress import OnProgress, Progress
from bot.agent.steps import ModelStep
from bot.agent.thinking import Thinking, parse_thinking, refuses_adaptive, refuses_effort, thinking_label
from bot.core import metrics
from bot.core.errors import ModelAuthError, ModelError, ModelRefused, ModelRequestError, ModelUnavailable
from store.models import Usage

log = logging.getLogger(__name__)

# Called with the text of an answer so far, as it streams in.
OnText = Callable[[str], Awaitable[None]]
# Called before waiting to try a failed call again, with the error's name.
OnRetry = Callable[[str], Awaitable[None]]


def _also(log_it: Any, on_retry: OnRetry | None) -> Callable[[RetryCallState], Awaitable[None]]:
    """A before_sleep hook that logs as the policy does, counts the retry, then tells `on_retry` (if given)."""

    async def hook(state: RetryCallState) -> None:
        if log_it is not None:
            log_it(state)
        error = state.outcome.exception() if state.outcome is not None else None
        metrics.RETRIES.labels(service="anthropic", reason=type(error).__name__).inc()
        if on_retry is not None:
            await on_retry(type(error).__name__)

    return hook


def count_call(model: str, usage: Usage | None) -> None:
    """Count one model call in the metrics: its tokens and estimated cost, or (usage None) its failure."""
    if usage is None:
        metrics.MODEL_CALLS.labels(model=model, outcome="error").inc()
        return
    metrics.MODEL_CALLS.labels(model=model, outcome="ok").inc()
    for kind, tokens in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
    ):
        metrics.MODEL_TOKENS.labels(model=model, kind=kind).inc(tokens)
    metrics.MODEL_COST_USD.labels(model=model).inc(usage.cost_microusd / 1_000_000)


# Worth another try: rate limits (429), server errors and overload (5xx, 529), and a dropped connection.
RETRYABLE = (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APIConnectionError)
# The same troubles met mid-stream arrive as an `error` event inside a 200 response, which the SDK raises as a bare
# APIStatusError (status 200): they are told apart by the error type in the event's body.
TRANSIENT_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


def transient(exc: BaseException) -> bool:
    """Whether another try may succeed: a rate limit, an overload, a server error or a dropped connection."""
    if isinstance(exc, RETRYABLE):
        return True
    body = exc.body if isinstance(exc, anthropic.APIStatusError) else None
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("type") in TRANSIENT_ERROR_TYPES


def usage_of(model: str, usage: anthropic.types.Usage | anthropic.types.beta.BetaUsage) -> Usage:
    """Our Usage (with its estimated cost) from the API's usage block.

    The cache_creation breakdown tells 1-hour writes from 5-minute ones; without it (older API versions, proxies)
    every write is taken for a 5-minute one, the only kind there was.
    """
    breakdown = usage.cache_creation
    split = breakdown.ephemeral_5m_input_tokens + breakdown.ephemeral_1h_input_tokens if breakdown else 0
    cache_write = usage.cache_creation_input_tokens if usage.cache_creation_input_tokens is not None else split
    cache_write_1h = min(cache_write, breakdown.ephemeral_1h_input_tokens) if breakdown else 0
    cache_read = usage.cache_read_input_tokens or 0
    server_tools = usage.server_tool_use
    cost = cost_usd(
        model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write=cache_write - cache_write_1h,
        cache_write_1h=cache_write_1h,
        cache_read=cache_read,
        web_searches=(server_tools.web_search_requests or 0) if server_tools is not None else 0,
    )
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        model_calls=1,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cost_microusd=round(cost * 1_000_000),
        cache_write_1h_tokens=cache_write_1h,
    )


class wait_retry_after(wait_base):  # lower case, like tenacity's own wait strategies
    """Wait as long as the API's retry-after header asks, else fall back to jittered exponential backoff."""

    def __init__(self, fallback: wait_base, cap: float = 30.0) -> None:
        self._fallback = fallback
        self._cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, anthropic.APIStatusError):
            header = error.response.headers.get("retry-after")
            try:
                return min(float(header), self._cap) if header is not None else self._fallback(retry_state)
            except ValueError:
                pass
        return self._fallback(retry_state)


DEFAULT_DEADLINE = 120.0
# The SDK refuses a call it is not streaming once max_tokens could take over ten minutes to write (it reckons
# 128,000 tokens an hour): above this, a call streams even when nobody watches its text.
MAX_UNSTREAMED_TOKENS = 21_333


def default_retry_policy(deadline: float = DEFAULT_DEADLINE, attempts: int | None = None) -> AsyncRetrying:
    """Retry transient API errors with jittered exponential backoff (or as retry-after asks) until `deadline`
    seconds have passed (no retry starts that would end after it), or after `attempts` tries if given."""
    stop: stop_base = stop_before_delay(deadline)
    if attempts is not None:
        stop = stop | stop_after_attempt(attempts)
    return AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_retry_after(wait_random_exponential(multiplier=1, max=20)),
        stop=stop,
        reraise=True,
        before_sleep=lambda state: log.warning(
            "Claude call failed (%s), retrying (attempt %d)",
            type(state.outcome.exception()).__name__ if state.outcome else "?",
            state.attempt_number,
        ),
    )


def sdk_client(api_key: str, base_url: str | None) -> anthropic.AsyncAnthropic:
    """The SDK client, with the SDK's own retries off: the tenacity policy here is the one place they live."""
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)


def model_error(exc: anthropic.APIError) -> ModelError:
    """Our error for an API error that the retries did not cure; the request id goes to the log, not to Slack."""
    if isinstance(exc, anthropic.APIStatusError):
        detail = f"Claude API error {exc.status_code} ({type(exc).__name__}, request id {exc.request_id or 'none'})"
        if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            return ModelAuthError(detail)
        if transient(exc):
            return ModelUnavailable(detail)
        return ModelRequestError(detail)
    return ModelUnavailable(f"Claude API unreachable ({type(exc).__name__})")


class ClaudeClient:
    """Asks Claude for one answer; with `thinking`, every call of this client thinks (the answer client only: a
    summary never needs it)."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        model: str,
        max_tokens: int,
        retry: AsyncRetrying | None = None,
        thinking: Thinking | None = None,
    ) -> None:
        self._client = client
        self._model = model
        self._max_tokens = max_tokens
        self._retry = retry or default_retry_policy()
        self._thinking = thinking

    @property
    def model(self) -> str:
        """The model a call asks for unless it names another."""
        return self._model

    @property
    def max_tokens(self) -> int:
        """max_tokens of a call that does not ask for another."""
        return self._max_tokens

    async def step(
        self,
        system: str | Sequence[dict[str, Any]],
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] = (),
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        on_text: OnText | None = None,
        on_retry: OnRetry | None = None,
        on_progress: OnProgress | None = None,
        extra: Mapping[str, Any] | None = None,
        thinking: str | None = None,
    ) -> ModelStep:
        """One model call, retried on transient errors; raises ModelError when it cannot be had.

        With `on_text` or `on_progress` the answer is streamed: `on_text` gets its text so far after each piece (a
        retry starts it again from the beginning), and `on_progress` hears of server tools (web_search...) as they
        start and finish. `on_retry` hears of each wait before another try. `extra` holds further request fields
        (`mcp_servers`...); with `betas` among them the call goes to the API's beta endpoint.
        """
        model = model or self._model
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens or self._max_tokens,
            "system": system if isinstance(system, str) else cast(list[TextBlockParam], list(system)),
            "messages": cast(list[MessageParam], list(messages)),
            "tools": cast(list[ToolUnionParam], list(tools)) if tools else anthropic.omit,
            **self._thinking_fields(model, thinking),
            **(extra or {}),
        }
        dropped: tuple[str, ...] = ()
        try:
            while True:
                try:
                    message = await self._with_retries(request, on_text, on_retry, on_progress)
                    break
                except anthropic.BadRequestError as exc:
                    # An MCP server that did not answer the API's tools/list fails the whole request: ask again
                    # without it (each time without those the refusal names: at most once per server).
                    refused = refused_servers(exc.body, request)
                    if not refused:
                        raise
                    # The status and the error's type, never its message (the API may echo a server's URL).
                    kind = exc.body.get("error", {}).get("type") if isinstance(exc.body, dict) else None
                    log.warning(
                        "the Claude API refused a request with MCP server(s) %s (%s %s); asking without",
                        ", ".join(refused),
                        exc.status_code,
                        kind,
                    )
                    dropped += refused
                    request = without_servers(request, refused)
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            count_call(model, None)
            raise model_error(exc) from exc
        usage = usage_of(model, message.usage)
        count_call(model, usage)  # a refusal is billed too
        if message.stop_reason == "refusal":
            raise ModelRefused("Claude declined to answer this request")
        return ModelStep(
            # JSON mode and no None fields: exactly what the API accepts back in the next request (a thinking block
            # keeps its signature, a redacted_thinking block its data: the API checks both when they come back).
            content=[block.model_dump(mode="json", exclude_none=True) for block in message.content],
            stop_reason=message.stop_reason,
            usage=usage,
            mcp_dropped=dropped,
        )

    async def _with_retries(
        self,
        request: dict[str, Any],
        on_text: OnText | None,
        on_retry: OnRetry | None,
        on_progress: OnProgress | None,
    ) -> anthropic.types.Message | anthropic.types.beta.BetaMessage:
        """One call, tried again on transient errors as the policy says."""
        # A copy per call: a tenacity Retrying object keeps the state of one retry loop at a time.
        retrying = self._retry.copy()
        retrying = retrying.copy(before_sleep=_also(retrying.before_sleep, on_retry))
        async for attempt in retrying:
            with attempt:
                if on_text is None and on_progress is None and request["max_tokens"] <= MAX_UNSTREAMED_TOKENS:
                    # The overloads cannot tell a streamed call from a dict of arguments: this one is not streamed.
                    message: anthropic.types.Message | anthropic.types.beta.BetaMessage = await self._messages(
                        request
                    ).create(**request)
                    return message
                return await self._streamed(request, on_text, on_progress)
        raise AssertionError("unreachable: the policy reraises the last error")  # pragma: no cover

    def _messages(self, request: Mapping[str, Any]) -> AsyncMessages | AsyncBetaMessages:
        """The SDK's messages resource for a request: the beta one when it asks for betas (the MCP connector)."""
        return self._client.beta.messages if "betas" in request else self._client.messages

    async def _streamed(
        self, request: dict[str, Any], on_text: OnText | None, on_progress: OnProgress | None
    ) -> anthropic.types.Message | anthropic.types.beta.BetaMessage:
        """The same call, streamed: a stream that breaks midway raises, and the retry policy starts it again.

        Leaving the `async with` for any reason, a cancellation included, closes the HTTP response: the API sees
        the connection close and stops generating (and billing) at once.
        """
        written = ""  # text deltas only: thinking_delta and signature_delta events are never shown
        server_tools = ServerToolWatch(on_progress)
        try:
            async with self._messages(request).stream(**request) as stream:
                async for event in stream:
                    if event.type == "text" and on_text is not None:
                        written += event.text
                        await on_text(written)
                    elif event.type == "content_block_start":
                        await server_tools.saw(event.content_block.model_dump(mode="json"))
                return await stream.get_final_message()
        except anthropic.APIError:
            await server_tools.abandoned()
            raise

    async def count_tokens(
        self,
        system: str | Sequence[dict[str, Any]],
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] = (),
        *,
        model: str | None = None,
        thinking: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Exact input tokens of a request, from the count_tokens endpoint (free, rate limited separately); `extra`
        as in step (an `mcp_toolset` tool needs its server and the beta to be counted)."""
        request: dict[str, Any] = {
            "model": model or self._model,
            "system": system if isinstance(system, str) else cast(list[TextBlockParam], list(system)),
            "messages": cast(list[MessageParam], list(messages)),
            "tools": cast(list[ToolUnionParam], list(tools)) if tools else anthropic.omit,
            **self._thinking_fields(model or self._model, thinking),
            **(extra or {}),
        }
        try:
            result = await self._messages(request).count_tokens(**request)
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            raise ModelError(f"token count failed ({type(exc).__name__})") from exc
        return result.input_tokens

    @property
    def thinking(self) -> str:
        """This client's thinking, as a task's setup records it (bot/agent/thinking.py thinking_label)."""
        return thinking_label(self._thinking)

    def _thinking_fields(self, model: str, label: str | None = None) -> dict[str, Any]:
        """The thinking and effort fields of a request to `model`: this client's, or those `label` names (a task's
        journaled setup); none when it does not think, or when `model` (a channel's choice) is known to predate
        adaptive thinking; without an effort level `model` is known not to take."""
        thinking = self._thinking if label is None else parse_thinking(label)
        if thinking is None or refuses_adaptive(model):
            return {}
        if thinking.effort is not None and refuses_effort(model, thinking.effort):
            thinking = Thinking(None)
        return thinking.request_fields()


class ServerToolWatch:
    """Tells `on_progress` of the server tools one streamed call runs, from its content_block_start events."""

    def __init__(self, on_progress: OnProgress | None) -> None:
        self._on_progress = on_progress
        self._running: dict[str, str] = {}  # server_tool_use id -> tool name, until its result arrives

    async def saw(self, block: dict[str, Any]) -> None:
        """A content block started: a server_tool_use starts a tool, a *_tool_result block finishes it."""
        if self._on_progress is None:
            return
        kind = str(block.get("type", ""))
        if kind == "server_tool_use":
            self._running[block["id"]] = block["name"]
            await self._on_progress(Progress.tool_started(block["id"], block["name"]))
        elif kind == "mcp_tool_use":  # a tool of a remote MCP server, called by the API's MCP connector
            started = Progress.mcp_tool_started(block["id"], str(block.get("server_name")), block["name"])
            self._running[block["id"]] = started.name
            await self._on_progress(started)
        elif kind.endswith("_tool_result") and block.get("tool_use_id") in self._running:
            tool_id = block["tool_use_id"]
            # A failed call's content is an error object (web_search_tool_result_error, web_fetch_tool_error...);
            # a good one's is a list of results or a result object.
            content = block.get("content")
            error = isinstance(content, dict) and str(content.get("type", "")).endswith("_error")
            error = error or block.get("is_error") is True  # an mcp_tool_result says so in a field of its own
            await self._on_progress(Progress.tool_finished(tool_id, self._running.pop(tool_id), error=error))

    async def abandoned(self) -> None:
        """The call failed: a tool it started will never report, so it is finished as failed (a retry starts anew)."""
        if self._on_progress is None:
            return
        while self._running:
            tool_id, name = self._running.popitem()
            await self._on_progress(Progress.tool_finished(tool_id, name, error=True))
