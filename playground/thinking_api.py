"""The fake Messages API's extended thinking: what it accepts of `thinking` and `output_config`, and its signatures.

As the API does, the fake signs each thinking block it writes and checks the signature of every thinking block sent
back, refusing one that was changed. A redacted_thinking block's data is opaque and signed the same way. When thinking
is on and a request answers tool calls, the thinking blocks written with those calls must come back with them, whole:
the API needs them to go on with the same reasoning. A thinking block cut off by max_tokens has no signature.

Model rules (Anthropic's docs, "Adaptive thinking", "Building with extended thinking" and "Effort"): adaptive thinking
from Claude Opus 4.6 and Sonnet 4.6 on; manual thinking (`enabled` with `budget_tokens` of at least 1,024 and below
max_tokens) no longer on Claude Opus 4.7 and later; with thinking on, no temperature but 1, no top_k, top_p only from
0.95 to 1. Effort levels: low, medium, high, xhigh, max; none on models before 4.5 nor on Sonnet or Haiku 4.5; max from
4.6 on, xhigh from 4.7 on. `display`: summarized (thinking text returned; the default before 4.7) or omitted (empty
text, the signature kept; the default from 4.7 on). Omitted or not, thinking is billed in full as output.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

Body = dict[str, Any]

EFFORTS = ("low", "medium", "high", "xhigh", "max")
THINKING_TYPES = ("adaptive", "enabled", "disabled")
MIN_BUDGET_TOKENS = 1_024
_VERSION = re.compile(r"^claude-(opus|sonnet|haiku|[a-z]+)-(\d+)(?:-(\d{1,2}))?(?:-\d{8})?$")
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
DISPLAYS = ("summarized", "omitted")
# From Claude Opus 4.7 on, thinking comes back omitted (empty text, signature kept) unless display asks for summaries.
OMITTED_FROM = (4, 7)


def _model(model: Any) -> tuple[str, tuple[int, int]] | None:
    """(family, (major, minor)) of a model id named the current way; the old claude-3-x-name ids read as 3.x."""
    if not isinstance(model, str):
        return None
    if model.startswith("claude-3"):
        return "old", (3, 0)
    match = _VERSION.match(model)
    return (match.group(1), (int(match.group(2)), int(match.group(3) or 0))) if match else None


def thinking_on(body: Body) -> bool:
    """Whether the request asks the model to think (adaptive, or enabled with a budget)."""
    config = body.get("thinking")
    return isinstance(config, dict) and config.get("type") in ("adaptive", "enabled")


def _config_problem(body: Body, known: tuple[str, tuple[int, int]] | None) -> str | None:
    config = body.get("thinking")
    if config is None:
        return None
    if not isinstance(config, dict) or config.get("type") not in THINKING_TYPES:
        return "thinking.type: Input should be 'adaptive', 'enabled' or 'disabled'"
    if config.get("display") not in (None, *DISPLAYS):
        return f"thinking.{config['type']}.display: Input should be 'summarized' or 'omitted'"
    version = known[1] if known else None
    if config["type"] == "adaptive" and version is not None and version < (4, 6):
        return f"adaptive thinking is not supported on this model ({body.get('model')}); use type 'enabled'"
    if config["type"] == "enabled":
        if version is not None and version >= (4, 7):
            return "thinking.type.enabled is not supported for this model. Use thinking.type.adaptive instead."
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or budget < MIN_BUDGET_TOKENS:
            return f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET_TOKENS}"
        if isinstance(body.get("max_tokens"), int) and budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
    return None


def _sampling_problem(body: Body) -> str | None:
    if not thinking_on(body):
        return None
    if "temperature" in body and body["temperature"] != 1:
        return "`temperature` may only be set to 1 when thinking is enabled"
    if "top_k" in body:
        return "`top_k` is not supported when thinking is enabled"
    top_p = body.get("top_p")
    if top_p is not None and not (isinstance(top_p, int | float) and 0.95 <= top_p <= 1):
        return "`top_p` must be between 0.95 and 1 when thinking is enabled"
    return None


def _effort_problem(body: Body, known: tuple[str, tuple[int, int]] | None) -> str | None:
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if effort is None:
        return None
    if effort not in EFFORTS:
        return "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
    if known is None:
        return None
    family, version = known
    if version < (4, 5) or (version == (4, 5) and family != "opus"):
        return f"This model does not support the effort parameter ({body.get('model')})"
    needed = {"max": (4, 6), "xhigh": (4, 7)}.get(effort)
    if needed is not None and version < needed:
        return f"output_config.effort: '{effort}' is not supported on this model ({body.get('model')})"
    return None


def without_thinking_if_off(body: Body, content: list[Body]) -> list[Body]:
    """A scripted reply's content as written for this request: its thinking left out when the request has none."""
    return content if thinking_on(body) else [block for block in content if block.get("type") not in THINKING_BLOCKS]


def display(body: Body) -> str:
    """How thinking comes back: the request's `display`, else the model's default (omitted from Claude 4.7 on)."""
    config = body.get("thinking")
    chosen = config.get("display") if isinstance(config, dict) else None
    if chosen is not None:
        return str(chosen)
    known = _model(body.get("model"))
    return "omitted" if known is not None and known[1] >= OMITTED_FROM else "summarized"


def thinking_config_problem(body: Body) -> str | None:
    """The API's invalid_request_error message for thinking, sampling or effort fields it refuses, else None."""
    known = _model(body.get("model"))
    return _config_problem(body, known) or _sampling_problem(body) or _effort_problem(body, known)


class ThinkingLedger:
    """Signs the thinking the fake writes, checks what comes back, and remembers which thinking went with which
    tool call so that a request answering it must carry that thinking whole."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._with_call: dict[str, list[Body]] = {}  # tool_use id -> thinking blocks of the message that made it

    def _mac(self, payload: str) -> str:
        return base64.b64encode(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()).decode()

    def signed(self, body: Body, content: list[Body]) -> list[Body]:
        """A message's content as the API returns it: each whole thinking block signed (its text left out when the
        request's display is omitted), each redacted_thinking block given signed opaque data. A thinking block
        max_tokens cut off already has its empty signature, and keeps it."""
        summarized = display(body) == "summarized"
        written: list[Body] = []
        for block in content:
            if block.get("type") == "thinking" and "signature" not in block:
                shown = str(block.get("thinking", "")) if summarized else ""
                nonce = secrets.token_urlsafe(12)
                signature = f"{nonce}.{self._mac(f'thinking:{nonce}:{shown}')}"
                written.append({"type": "thinking", "thinking": shown, "signature": signature})
            elif block.get("type") == "redacted_thinking" and "data" not in block:
                nonce = secrets.token_urlsafe(24)
                written.append({"type": "redacted_thinking", "data": f"{nonce}.{self._mac('redacted:' + nonce)}"})
            else:
                written.append(block)
        return written

    def wrote(self, content: list[Body]) -> None:
        """Remember the thinking a message was written with, for each tool call it made."""
        thinking = [block for block in content if block.get("type") in THINKING_BLOCKS and _signed(block)]
        for block in content:
            if block.get("type") == "tool_use" and thinking:
                self._with_call[str(block.get("id"))] = thinking

    def problem(self, body: Body) -> str | None:
        """The API's message for a thinking block changed or unsigned, or (thinking on) for the thinking of the tool
        calls being answered not sent back whole; else None."""
        messages = body.get("messages")
        for i, message in enumerate(messages if isinstance(messages, list) else []):
            content = message.get("content") if isinstance(message, dict) else None
            for j, block in enumerate(content if isinstance(content, list) else []):
                if isinstance(block, dict) and block.get("type") in THINKING_BLOCKS and not self._genuine(block):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `{block['type']}` block"
            last = content[-1] if isinstance(content, list) and content else None
            if message.get("role") == "assistant" and isinstance(last, dict) and last.get("type") in THINKING_BLOCKS:
                return f"messages.{i}: The final block in an assistant message cannot be `{last['type']}`."
        return self._dropped(body) if thinking_on(body) and isinstance(messages, list) else None

    def _genuine(self, block: Body) -> bool:
        if block["type"] == "thinking":
            nonce, _, mac = str(block.get("signature", "")).partition(".")
            return bool(nonce) and hmac.compare_digest(mac, self._mac(f"thinking:{nonce}:{block.get('thinking', '')}"))
        nonce, _, mac = str(block.get("data", "")).partition(".")
        return bool(nonce) and hmac.compare_digest(mac, self._mac("redacted:" + nonce))

    def _dropped(self, body: Body) -> str | None:
        """With tool results last, the assistant turn before them must hold the thinking its calls were made with."""
        messages: list[Body] = body["messages"]
        if len(messages) < 2 or messages[-2].get("role") != "assistant":
            return None
        last, turn = messages[-1].get("content"), messages[-2].get("content")
        if not isinstance(last, list) or not isinstance(turn, list):
            return None
        answered = {block.get("tool_use_id") for block in last if block.get("type") == "tool_result"}
        for call_id in answered:
            if any(block not in turn for block in self._with_call.get(str(call_id), [])):
                return (  # the API's wording for the latest assistant message
                    f"messages.{len(messages) - 2}.content: `thinking` or `redacted_thinking` blocks in the latest "
                    "assistant message cannot be modified. These blocks must remain as they were in the original "
                    "response."
                )
        return None


def _signed(block: Body) -> bool:
    return bool(block.get("signature")) if block.get("type") == "thinking" else bool(block.get("data"))
