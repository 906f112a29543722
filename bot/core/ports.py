"""What the runtime needs from Slack, as a protocol: handlers/ implements it, so bot/ never imports slack_sdk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from store.models import ThreadRef


@dataclass(frozen=True)
class ThreadMessage:
    """A message already in a Slack thread, as the agent needs it."""

    ts: str
    text: str
    user_id: str | None
    from_this_bot: bool
    from_other_bot: bool
    reset_at: float | None = None  # on the bot's reset notes: when the reset was asked; what came before is forgotten


@dataclass(frozen=True)
class ThreadTail:
    """The newest messages of (a stretch of) a thread, oldest first, and where the older ones not read begin."""

    messages: list[ThreadMessage]
    older_than: str | None  # older messages were left unread: read them with before_ts=this (None: there are none)


@dataclass(frozen=True)
class UserTimeZone:
    """A person's time zone as their Slack profile (users.info) has it: the IANA name ("Europe/London"), its label
    ("Greenwich Mean Time") and its offset from UTC in seconds when Slack was asked."""

    name: str
    label: str
    offset: int


@dataclass(frozen=True)
class TaskUpdate:
    """One step of the work shown in a streamed answer (a card in Slack); a later update of the same id replaces it."""

    id: str
    title: str
    status: str  # "pending", "in_progress", "complete" or "error"


@dataclass(frozen=True)
class SearchHit:
    """One message Slack's search found (assistant.search.context), as the search tool shows it."""

    channel_id: str
    ts: str
    author_user_id: str
    text: str  # written by whoever posted it: untrusted
    permalink: str
    is_bot: bool = False


@dataclass(frozen=True)
class SearchPage:
    """A page of search results and the cursor of the next one ("" when there is none)."""

    hits: list[SearchHit]
    next_cursor: str = ""


class SlackGateway(Protocol):
    """Slack Web API calls made by the task runner; each raises bot.core.errors.SlackError when Slack says no."""

    async def bot_user_id(self, team_id: str) -> str:
        """The bot's own user id in the team."""
        ...

    async def post_placeholder(self, thread: ThreadRef, text: str, task_id: str) -> str:
        """Post the message that will carry a task's answer, tagged with the task id; returns its ts."""
        ...

    async def update_message(self, thread: ThreadRef, ts: str, text: str, *, feedback: bool = False) -> None:
        """Replace the text of a message the bot posted; `feedback` ends it with the answer's feedback buttons."""
        ...

    async def start_stream(
        self, thread: ThreadRef, *, user_id: str, task_id: str, updates: Sequence[TaskUpdate] = ()
    ) -> str | None:
        """Start an answer streamed to `user_id` (chat.startStream), tagged with its task and showing `updates`;
        returns the message's ts, or None when this workspace or thread cannot stream (the caller falls back to
        updating a posted message)."""
        ...

    async def append_stream(
        self, thread: ThreadRef, ts: str, *, text: str = "", updates: Sequence[TaskUpdate] = ()
    ) -> None:
        """Append text and step updates to a streamed answer; raises StreamClosed once Slack takes no more (the
        stream timed out, or a person pressed Stop)."""
        ...

    async def stop_stream(
        self,
        thread: ThreadRef,
        ts: str,
        *,
        task_id: str,
        text: str = "",
        updates: Sequence[TaskUpdate] = (),
        feedback: bool = False,
    ) -> None:
        """End a streamed answer, appending `text` and `updates` and tagging the message with its task (`feedback`:
        ending it with the feedback buttons); raises StreamClosed when the stream had ended already."""
        ...

    async def rename_session(self, thread: ThreadRef, title: str) -> None:
        """Give the thread's agent session a title people see. Best effort, never raises."""
        ...

    async def delete_message(self, thread: ThreadRef, ts: str) -> None:
        """Delete a message the bot posted; one that is gone already is not an error."""
        ...

    async def post_reply(self, thread: ThreadRef, text: str) -> str:
        """Post a plain reply in the thread; returns its ts."""
        ...

    async def post_reset_note(self, thread: ThreadRef, text: str, *, reset_at: float) -> str:
        """Post the note that the agent was reset at `reset_at`, marked so that later reads of the thread skip
        what came before that moment."""
        ...

    async def set_working(self, thread: ThreadRef, message_ts: str, working: bool, *, user_id: str = "") -> None:
        """Show (or clear) that the bot is working on a message (asked by `user_id`): the thread's agent session
        status, or a reaction on the message where sessions are not available. Best effort, never raises."""
        ...

    async def find_task_message(self, thread: ThreadRef, task_id: str, *, after_ts: str, part: int = 0) -> str | None:
        """The ts of the bot's message tagged with this task id and part (posted after `after_ts`), if any."""
        ...

    async def post_part(self, thread: ThreadRef, text: str, task_id: str, part: int, *, feedback: bool = False) -> str:
        """Post part `part` (1, 2...) of a long answer after its first message, tagged like it; returns its ts."""
        ...

    async def recent_messages(self, thread: ThreadRef, *, limit: int, before_ts: str | None = None) -> ThreadTail:
        """The thread's newest `limit` messages (its parent counts as the first) posted before `before_ts`, or at
        all, reset notes marked; only the pages they are on are read, not the whole thread."""
        ...

    async def is_thread(self, thread: ThreadRef) -> bool:
        """Whether the message at `thread.thread_ts` is in a thread (has replies, or is one); one small read."""
        ...

    async def download(self, team_id: str, url: str, max_bytes: int) -> tuple[bytes, str]:
        """A shared file's bytes (at most max_bytes + 1, so a caller can tell it was longer) and content type.
        Only from Slack's own file host, with no redirect elsewhere: any other URL raises SlackError unrequested."""
        ...

    async def display_name(self, team_id: str, user_id: str) -> str | None:
        """The user's display name, or None when it cannot be had cheaply."""
        ...

    async def time_zone(self, team_id: str, user_id: str) -> UserTimeZone | None:
        """The person's time zone (users.info, kept a while), or None when Slack will not say."""
        ...

    async def search_context(
        self, team_id: str, *, query: str, action_token: str, limit: int, cursor: str = ""
    ) -> SearchPage:
        """Search the workspace's public channels as the person whose message gave `action_token` may
        (assistant.search.context); SearchUnavailable where Slack does not allow it in the workspace (remembered a
        while), SearchTokenRefused when the token is no longer good."""
        ...
