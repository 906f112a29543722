"""Streaming side of FakeSlack: chat.startStream / appendStream / stopStream with Slack's limits and errors.

A streamed message is stored like any bot message (conversations.replies shows it, its text growing with each
append); the stream's own state (mode, task cards, whether it still takes appends) is kept beside it.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .slack_sessions import SESSION_STATUSES, SessionBook
from .slack_store import SlackApiFailure
from .slack_workspaces import InActiveWorkspace

Args = dict[str, Any]
# Each markdown_text (argument or chunk) of one call holds at most 12,000 characters; longer is msg_too_long.
MAX_MARKDOWN_TEXT = 12_000
# A message's text is cut at 40,000 characters, with the warning message_truncated.
MAX_MESSAGE_TEXT = 40_000
MAX_BLOCKS = 50
# Task and plan titles hold at most 256 characters (reported by developers, citing Slack).
MAX_CHUNK_TITLE = 256
TASK_STATUSES = ("pending", "in_progress", "complete", "error")
TASK_DISPLAY_MODES = ("timeline", "plan")
# Slack finalizes a stream about five minutes after chat.startStream, even while appends keep coming.
STREAM_LIFETIME = 300.0
_TS = re.compile(r"^\d+\.\d{6}$")


@dataclass
class TaskCard:
    """One task_update as Slack shows it: title and status replace, details append."""

    id: str
    title: str
    status: str
    details: str = ""
    output: str = ""
    sources: list[Args] = field(default_factory=list)


@dataclass
class AgentStream:
    """A streaming message's state beside the stored message."""

    channel: str
    ts: str
    thread_ts: str
    started: float  # time.monotonic() at chat.startStream
    mode: str | None = None  # "chunks" or "markdown_text", fixed by the first call that carries content
    # "streaming", then "stopped" (chat.stopStream), "stopped_by_user" (Stop pressed) or "timed_out".
    state: str = "streaming"
    task_display_mode: str = "timeline"
    recipient_user_id: str | None = None
    recipient_team_id: str | None = None
    tasks: dict[str, TaskCard] = field(default_factory=dict)
    plan_title: str | None = None
    blocks: list[Args] = field(default_factory=list)  # from `blocks` chunks, shown in the stream


def _content(args: Args) -> tuple[str | None, list[Args]]:
    """The call's mode ("markdown_text", "chunks" or None without content) and its chunks, validated."""
    markdown, chunks = args.get("markdown_text"), args.get("chunks")
    if markdown and chunks:
        raise SlackApiFailure("invalid_arguments")  # Slack takes one or the other in a call
    if markdown:
        if not isinstance(markdown, str):
            raise SlackApiFailure("invalid_arguments")
        if len(markdown) > MAX_MARKDOWN_TEXT:
            raise SlackApiFailure("msg_too_long")
        return "markdown_text", [{"type": "markdown_text", "text": markdown}]
    if chunks is None or chunks == []:
        return None, []
    if not isinstance(chunks, list):
        raise SlackApiFailure("invalid_chunks")
    for chunk in chunks:
        _check_chunk(chunk)
    return "chunks", chunks


def _check_chunk(chunk: Any) -> None:
    """Refuse a chunk Slack would refuse: unknown type, missing or out-of-range fields."""
    check = _CHUNK_CHECKS.get(chunk.get("type")) if isinstance(chunk, dict) else None
    if check is None or not check(chunk):
        raise SlackApiFailure("invalid_chunks")


def _markdown_chunk_ok(chunk: Args) -> bool:
    text = chunk.get("text")
    if isinstance(text, str) and len(text) > MAX_MARKDOWN_TEXT:
        raise SlackApiFailure("msg_too_long")  # counted per chunk, not over the whole message
    return isinstance(text, str)


def _task_chunk_ok(chunk: Args) -> bool:
    if not all(isinstance(chunk.get(name), str) and chunk[name] for name in ("id", "title", "status")):
        return False
    optional_ok = all(isinstance(chunk.get(name, ""), str) for name in ("details", "output"))
    return chunk["status"] in TASK_STATUSES and len(chunk["title"]) <= MAX_CHUNK_TITLE and optional_ok


def _plan_chunk_ok(chunk: Args) -> bool:
    title = chunk.get("title")
    return isinstance(title, str) and 1 <= len(title) <= MAX_CHUNK_TITLE


def _blocks_chunk_ok(chunk: Args) -> bool:
    blocks = chunk.get("blocks")
    return isinstance(blocks, list) and 1 <= len(blocks) <= MAX_BLOCKS


_CHUNK_CHECKS: dict[Any, Callable[[Args], bool]] = {
    "markdown_text": _markdown_chunk_ok,
    "task_update": _task_chunk_ok,
    "plan_update": _plan_chunk_ok,
    "blocks": _blocks_chunk_ok,
}


def check_blocks(blocks: Any) -> list[Args]:
    """Message blocks as chat.stopStream takes them: at most 50 objects with a type, feedback buttons well formed."""
    if blocks is None:
        return []
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and b.get("type") for b in blocks):
        raise SlackApiFailure("invalid_blocks")
    if len(blocks) > MAX_BLOCKS:
        raise SlackApiFailure("msg_blocks_too_many")
    for block in blocks:
        if block["type"] == "context_actions":
            _check_context_actions(block)
    return blocks


def _check_context_actions(block: Args) -> None:
    # context_actions holds 1 to 5 elements; feedback_buttons needs both buttons, each with a value.
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 5:
        raise SlackApiFailure("invalid_blocks")
    for element in elements:
        if not isinstance(element, dict) or element.get("type") not in ("feedback_buttons", "icon_button"):
            raise SlackApiFailure("invalid_blocks")
        if element["type"] == "feedback_buttons":
            for side in ("positive_button", "negative_button"):
                button = element.get(side)
                if not isinstance(button, dict) or not button.get("value") or not isinstance(button.get("text"), dict):
                    raise SlackApiFailure("invalid_blocks")


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
        raise SlackApiFailure("invalid_metadata_format")
    if not isinstance(metadata.get("event_payload", {}), dict):
        raise SlackApiFailure("invalid_metadata_format")


class SlackStreamsMixin(InActiveWorkspace):
    """Adds Slack's streaming methods to FakeSlack; streams auto-stop `stream_lifetime` seconds after their start."""

    app_id: str
    agent_sessions: SessionBook
    agent_features: bool

    def _init_streams(self) -> None:
        self.stream_lifetime = STREAM_LIFETIME
        self._streams: dict[tuple[str, str], AgentStream] = {}

    def _stream_handlers(self) -> dict[str, Callable[[Args], Args]]:
        return {
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
        }

    def _bot_message(self, channel: str, text: str, thread_ts: str | None, extra: Args) -> Args:
        """Store a message from the bot and return the stored (mutable) copy; FakeSlack provides it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ inspection

    def stream(self, channel: str, ts: str) -> AgentStream:
        """The stream whose message is `ts` (LookupError if that message was never streamed)."""
        found = self._streams.get((channel, ts))
        if found is None:
            raise LookupError(f"no stream {ts} in {channel}")
        self._expire(found)
        return found

    def find_stream(self, channel: str, ts: str) -> AgentStream | None:
        """The stream whose message is `ts`, or None for a message that was not streamed."""
        found = self._streams.get((channel, ts))
        return None if found is None else self._expire(found)

    def streams_of(self, channel: str, thread_ts: str) -> list[AgentStream]:
        """Every stream started in a thread, oldest first."""
        found = [s for s in self._streams.values() if s.channel == channel and s.thread_ts == thread_ts]
        for stream in found:
            self._expire(stream)
        return found

    def is_streaming(self, channel: str, ts: str) -> bool:
        """True while the message `ts` is a stream that still takes appends."""
        found = self._streams.get((channel, ts))
        return found is not None and self._expire(found).state == "streaming"

    def time_out_stream(self, channel: str, ts: str) -> None:
        """End a stream now as Slack's five-minute limit would (for tests that cannot wait that long)."""
        stream = self.stream(channel, ts)
        if stream.state == "streaming":
            stream.started = time.monotonic() - self.stream_lifetime
            self._expire(stream)

    def _expire(self, stream: AgentStream) -> AgentStream:
        if stream.state == "streaming" and time.monotonic() - stream.started >= self.stream_lifetime:
            stream.state = "timed_out"
            # "If a stream times out, the session status is set to active."
            self.agent_sessions.write_status(stream.channel, stream.thread_ts, "active")
        return stream

    # ------------------------------------------------------------------ Web API methods

    def _chat_start_stream(self, args: Args) -> Args:
        if not self.agent_features:
            raise SlackApiFailure("feature_disabled")
        channel = str(args.get("channel") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        thread_ts = str(args.get("thread_ts") or "")
        # Documented as optional, but Slack answers invalid_thread_ts without one in channels and DMs.
        parent = self.store.get(channel, thread_ts) if _TS.match(thread_ts) else None
        if parent is None:
            raise SlackApiFailure("invalid_thread_ts")
        if not channel.startswith("D"):  # streaming outside a DM names who the stream is for
            if not args.get("recipient_team_id"):
                raise SlackApiFailure("missing_recipient_team_id")
            if not args.get("recipient_user_id"):
                raise SlackApiFailure("missing_recipient_user_id")
        display_mode = args.get("task_display_mode") or "timeline"
        if display_mode not in TASK_DISPLAY_MODES:
            raise SlackApiFailure("invalid_arguments")
        mode, chunks = _content(args)
        _check_metadata(args.get("metadata"))  # (startStream takes metadata: its errors list invalid_metadata_*)
        extra = {"metadata": copy.deepcopy(args["metadata"])} if args.get("metadata") is not None else {}
        message = self._bot_message(channel, "", thread_ts, extra)
        stream = AgentStream(
            channel,
            message["ts"],
            thread_ts,
            time.monotonic(),
            mode,
            task_display_mode=str(display_mode),
            recipient_user_id=args.get("recipient_user_id"),
            recipient_team_id=args.get("recipient_team_id"),
        )
        self._streams[(channel, stream.ts)] = stream
        warnings = self._apply_chunks(stream, message, chunks)
        # startStream creates the thread's session if there is none (started by the thread's author) and marks
        # it processing.
        initiator = parent.get("user") if self.agent_sessions.get(channel, thread_ts) is None else None
        self.agent_sessions.write_status(channel, thread_ts, "processing", initiator_user_id=initiator)
        return {"channel": channel, "ts": stream.ts, **_warnings(warnings)}

    def _chat_append_stream(self, args: Args) -> Args:
        stream, message = self._open_stream(args, stop=False)
        mode, chunks = _content(args)
        if mode is None:
            raise SlackApiFailure("no_text")
        self._lock_mode(stream, mode)
        warnings = self._apply_chunks(stream, message, chunks)
        return {"channel": stream.channel, "ts": stream.ts, **_warnings(warnings)}

    def _chat_stop_stream(self, args: Args) -> Args:
        stream, message = self._open_stream(args, stop=True)
        mode, chunks = _content(args)
        blocks = check_blocks(args.get("blocks"))
        _check_metadata(args.get("metadata"))
        status = args.get("session_status") or "active"
        if status not in SESSION_STATUSES:
            raise SlackApiFailure("invalid_arguments")
        if mode is not None:
            self._lock_mode(stream, mode)
        warnings = self._apply_chunks(stream, message, chunks)
        if blocks:
            message["blocks"] = copy.deepcopy(blocks)  # rendered at the bottom of the final message
        if args.get("metadata") is not None:
            message["metadata"] = copy.deepcopy(args["metadata"])
        stream.state = "stopped"
        self.agent_sessions.write_status(stream.channel, stream.thread_ts, str(status))
        return {
            "channel": stream.channel,
            "ts": stream.ts,
            "message": self.store.view(stream.channel, message),
            **_warnings(warnings),
        }

    # ------------------------------------------------------------------ helpers

    def _open_stream(self, args: Args, *, stop: bool) -> tuple[AgentStream, Args]:
        """The stream an append or stop names, or the error Slack gives when it no longer takes one."""
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        message = self.store.find(channel, ts)
        if message.get("bot_id") != self.bot_id:
            raise SlackApiFailure("message_not_owned_by_app")
        stream = self._streams.get((channel, ts))
        if stream is None:
            raise SlackApiFailure("message_not_in_streaming_state")
        self._expire(stream)
        if stream.state == "stopped_by_user" and not stop:
            raise SlackApiFailure("stopped_by_user")
        if stream.state != "streaming":
            raise SlackApiFailure("message_not_in_streaming_state")
        return stream, message

    @staticmethod
    def _lock_mode(stream: AgentStream, mode: str) -> None:
        # "If you started the stream with chunks, you must append with chunks", and likewise for markdown_text.
        if stream.mode is None:
            stream.mode = mode
        elif stream.mode != mode:
            raise SlackApiFailure("streaming_mode_mismatch")

    @staticmethod
    def _apply_chunks(stream: AgentStream, message: Args, chunks: list[Args]) -> list[str]:
        """Add the chunks to the message and the stream's cards; the warnings Slack would give."""
        warnings: list[str] = []
        for chunk in chunks:
            kind = chunk["type"]
            if kind == "markdown_text":
                message["text"] = str(message.get("text") or "") + chunk["text"]
            elif kind == "task_update":
                _apply_task_update(stream, chunk)
            elif kind == "plan_update":
                stream.plan_title = chunk["title"]
            else:
                stream.blocks.extend(copy.deepcopy(chunk["blocks"]))
        if len(message.get("text") or "") > MAX_MESSAGE_TEXT:
            message["text"] = message["text"][:MAX_MESSAGE_TEXT]
            warnings.append("message_truncated")
        return warnings


def _apply_task_update(stream: AgentStream, chunk: Args) -> None:
    card = stream.tasks.get(chunk["id"])
    if card is None:
        stream.tasks[chunk["id"]] = TaskCard(
            chunk["id"],
            chunk["title"],
            chunk["status"],
            chunk.get("details", ""),
            chunk.get("output", ""),
            list(chunk.get("sources") or []),
        )
        return
    # An update with the same id changes that card: title and status replace, details append (send deltas).
    card.title, card.status = chunk["title"], chunk["status"]
    card.details += chunk.get("details", "")
    if chunk.get("output"):
        card.output = chunk["output"]
    if chunk.get("sources"):
        card.sources = list(chunk["sources"])


def _warnings(warnings: list[str]) -> Args:
    if not warnings:
        return {}
    return {"warning": ",".join(warnings), "response_metadata": {"warnings": warnings}}


__all__ = [
    "MAX_MARKDOWN_TEXT",
    "STREAM_LIFETIME",
    "TASK_STATUSES",
    "AgentStream",
    "SlackStreamsMixin",
    "TaskCard",
    "check_blocks",
]
