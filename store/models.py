"""Plain models the store reads and writes; they know nothing of Slack's or Anthropic's SDKs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Literal

from store.errors import CorruptRecord

Role = Literal["user", "assistant"]


# Never in a Slack id or ts: ":" separates the parts of keys and references, and a brace would make a key's hash tag
# (store/keys.py) somebody else's.
UNSAFE = ": \n{}"

# The thread_ts of the queue of work about a whole channel (a channel reset): no Slack ts has letters.
CHANNEL_WIDE = "channel"


@dataclass(frozen=True)
class ThreadRef:
    """One conversation: a Slack thread, or the top level of a direct-message channel (thread_ts "")."""

    team_id: str
    channel_id: str
    thread_ts: str

    def __post_init__(self) -> None:
        for name in ("team_id", "channel_id"):
            value = getattr(self, name)
            if not value or any(sep in value for sep in UNSAFE):
                raise ValueError(f"invalid {name}: {value!r}")
        if any(sep in self.thread_ts for sep in UNSAFE):
            raise ValueError(f"invalid thread_ts: {self.thread_ts!r}")

    def encode(self) -> str:
        """A compact form for queue entries: team:channel:thread_ts."""
        return f"{self.team_id}:{self.channel_id}:{self.thread_ts}"

    @classmethod
    def decode(cls, value: str) -> ThreadRef:
        """Inverse of encode()."""
        parts = value.split(":")
        if len(parts) != 3:
            raise CorruptRecord(f"not a thread reference: {value[:80]!r}")  # bounded: it comes from Redis as is
        return cls(*parts)


@dataclass(frozen=True)
class Turn:
    """One message of the conversation as the agent remembers it."""

    role: Role
    text: str
    user_id: str | None = None
    user_name: str | None = None
    ts: str | None = None

    def to_json(self) -> str:
        """Serialize for the turns list."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Turn:
        """Parse a stored turn; a malformed one raises CorruptRecord rather than a KeyError deep in a worker."""
        try:
            data = json.loads(raw)
            role = data["role"]
            if role not in ("user", "assistant"):
                raise ValueError(role)
            return cls(role, str(data["text"]), data.get("user_id"), data.get("user_name"), data.get("ts"))
        except (ValueError, KeyError, TypeError) as exc:
            # What people wrote stays out of errors (they reach the log): say only how long the record was.
            raise CorruptRecord(f"malformed turn ({len(raw)} characters)") from exc


class TaskKind(StrEnum):
    """What a task asks of the agent."""

    ANSWER = "answer"  # a mention (or a DM): answer it in the thread
    NOTE = "note"  # a later human message in a thread with an agent: remember it, do not answer
    STATUS = "status"  # "@bot status" in a thread
    RESET = "reset"  # "@bot reset" in a thread
    GREET = "greet"  # a mention with nothing else in it: say what the bot can do
    CHANNEL_RESET = "channel_reset"  # reset every agent of a channel, one thread at a time (on CHANNEL_WIDE)
    NOTICE = "notice"  # tell the thread something intake decided (a refusal: the task's text), no model call
    SCHEDULED = "scheduled"  # a timer the agent set came due (store/schedules.py): its note, run as an answer


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its thread's agent was reset before it finished
    STOPPED = "stopped"  # a person stopped it (the Stop button, `@bot stop`, `/agent stop`); its partial answer stays


@dataclass(frozen=True)
class SharedFile:
    """A file shared with a message, as much of Slack's file object as the agent needs to read it."""

    file_id: str
    name: str
    mimetype: str
    size: int
    url: str  # url_private_download: needs the bot token
    mode: str = "hosted"  # "snippet" for text snippets

    def to_json(self) -> dict[str, object]:
        """The plain form stored with the task."""
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, object]) -> SharedFile:
        """Inverse of to_json()."""
        return cls(
            str(value["file_id"]),
            str(value["name"]),
            str(value["mimetype"]),
            int(str(value.get("size", 0))),
            str(value["url"]),
            str(value.get("mode", "hosted")),
        )


@dataclass(frozen=True)
class Task:
    """A unit of work for one thread, recorded by intake and executed by the runner."""

    task_id: str
    kind: TaskKind
    thread: ThreadRef
    text: str
    user_id: str
    message_ts: str
    created_at: float
    status: TaskStatus = TaskStatus.QUEUED
    attempts: int = 0
    reply_ts: str | None = None
    error: str | None = None
    original_chars: int = 0  # set when intake cut a message longer than MAX_INPUT_CHARS: its full length
    files: tuple[SharedFile, ...] = ()
    reply_streamed: bool = False  # reply_ts is a message Slack streams (its stream may still be open)
    stop_by: str | None = None  # who asked to stop it (set by store/stops.py, never by intake)
    # The short-lived token Slack's event gave for searching as the asker (assistant.search.context); a credential,
    # so kept out of the repr that logs and errors might show. None: the event had none, or an older task.
    action_token: str | None = field(default=None, repr=False)

    def to_fields(self) -> dict[str, str]:
        """The fields written to the task's Redis hash when it is recorded."""
        return {
            "task_id": self.task_id,
            "kind": self.kind.value,
            "thread": self.thread.encode(),
            "text": self.text,
            "user_id": self.user_id,
            "message_ts": self.message_ts,
            "created_at": repr(self.created_at),
            "status": self.status.value,
            "attempts": str(self.attempts),
            "original_chars": str(self.original_chars),
            "files": json.dumps([shared.to_json() for shared in self.files]),
            **({"action_token": self.action_token} if self.action_token else {}),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Task:
        """Parse a task hash."""
        try:
            return cls(
                task_id=fields["task_id"],
                kind=TaskKind(fields["kind"]),
                thread=ThreadRef.decode(fields["thread"]),
                text=fields["text"],
                user_id=fields["user_id"],
                message_ts=fields["message_ts"],
                created_at=float(fields["created_at"]),
                status=TaskStatus(fields["status"]),
                attempts=int(fields.get("attempts", "0")),
                reply_ts=fields.get("reply_ts") or None,
                error=fields.get("error") or None,
                original_chars=int(fields.get("original_chars", "0") or 0),
                files=tuple(SharedFile.from_json(value) for value in json.loads(fields.get("files") or "[]")),
                reply_streamed=fields.get("reply_streamed") == "1",
                stop_by=fields.get("stop_by") or None,
                action_token=fields.get("action_token") or None,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptRecord(f"malformed task {fields.get('task_id')!r}") from exc


USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "model_calls",
    "cost_microusd",
    "cache_write_1h_tokens",
)


@dataclass(frozen=True)
class Usage:
    """Tokens and estimated cost of model calls. input_tokens are the uncached ones, as the API reports them.

    cache_write_tokens counts every token written to the prompt cache; cache_write_1h_tokens the part of them
    written to the 1-hour cache (dearer than the 5-minute one). Records from before it read it as zero.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_microusd: int = 0
    cache_write_1h_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        """The counters in field order."""
        return (
            self.input_tokens,
            self.output_tokens,
            self.model_calls,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cost_microusd,
            self.cache_write_1h_tokens,
        )

    def counters(self) -> dict[str, int]:
        """The counters by their Redis field names; cache_write_1h_tokens only when some were written, so a record
        without 1-hour writes is the very record the release before it wrote (and that release reads it)."""
        return {
            name: getattr(self, name)
            for name in USAGE_FIELDS
            if name != "cache_write_1h_tokens" or self.cache_write_1h_tokens
        }

    @property
    def total_input_tokens(self) -> int:
        """Every input token, cached or not."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def cost_usd(self) -> float:
        """The estimated cost in dollars."""
        return self.cost_microusd / 1_000_000

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Usage:
        """Counters of a state or channel-usage hash; missing ones read as zero."""
        return cls(**{name: int(fields.get(name, "0") or 0) for name in USAGE_FIELDS})


@dataclass(frozen=True)
class AgentState:
    """The summary fields of a thread's agent, as `/agent status` shows them."""

    created_at: float
    updated_at: float
    status: str
    turns: int
    tasks_done: int
    tasks_failed: int
    usage: Usage
    summary: str = ""
    summarized_turns: int = 0
    last_error: str | None = None
    tasks_stopped: int = 0  # stopped by a person: neither done nor failed

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> AgentState:
        """Parse the state hash; counters that were never incremented read as zero."""
        try:
            return cls(
                created_at=float(fields["created_at"]),
                updated_at=float(fields.get("updated_at", fields["created_at"])),
                status=fields.get("status", "idle"),
                turns=int(fields.get("turns", "0") or 0),
                tasks_done=int(fields.get("tasks_done", "0") or 0),
                tasks_failed=int(fields.get("tasks_failed", "0") or 0),
                usage=Usage.from_fields(fields),
                summary=fields.get("summary", ""),
                summarized_turns=int(fields.get("summarized_turns", "0") or 0),
                last_error=fields.get("last_error") or None,
                tasks_stopped=int(fields.get("tasks_stopped", "0") or 0),
            )
        except (KeyError, ValueError) as exc:
            raise CorruptRecord("malformed agent state") from exc
