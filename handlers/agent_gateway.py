"""Slack's agent features on the Web API: session status, streamed answers with step updates, session titles.

Not every workspace has them: an app not declared an agent, a workspace with the feature off, a token without the
scopes. Slack's first answer decides, per workspace, and is remembered (and logged once), so that a workspace without
them falls back to the 👀 reaction and to updating a posted message, and is not asked again on every answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.errors import SlackError, StreamClosed
from bot.core.ports import TaskUpdate
from handlers.feedback import feedback_block
from store.models import ThreadRef

log = logging.getLogger(__name__)

TASK_EVENT_TYPE = "agent_task"
WORKING_REACTION = "eyes"
# Slack's answers meaning "this workspace (or this app's install there) has no agent features": sessions and streams
# are not tried there again by this process.
NO_AGENT_FEATURES = frozenset(
    {
        "feature_disabled",
        "not_agent_app",
        "missing_scope",
        "not_allowed_token_type",
        "unknown_method",
        "team_access_not_granted",
    }
)
# A stream that takes no more: Slack ended it (about five minutes after its start), or a person pressed Stop.
STREAM_ENDED = frozenset({"message_not_in_streaming_state", "stopped_by_user"})
SESSION_TITLE_CHARS = 200
TASK_TITLE_CHARS = 256


def task_metadata(task_id: str, part: int = 0) -> dict[str, Any]:
    """The metadata that tags a message with the task (and part) whose answer it carries."""
    payload: dict[str, Any] = {"task_id": task_id}
    if part:
        payload["part"] = part
    return {"event_type": TASK_EVENT_TYPE, "event_payload": payload}


def update_chunk(update: TaskUpdate) -> dict[str, Any]:
    """A step of the work as a `task_update` chunk of a streamed message."""
    return {"type": "task_update", "id": update.id, "title": update.title[:TASK_TITLE_CHARS], "status": update.status}


def stream_chunks(text: str, updates: Sequence[TaskUpdate]) -> list[dict[str, Any]]:
    """Text, then step updates, as chunks: a stream started with chunks takes only chunks from then on."""
    chunks = [{"type": "markdown_text", "text": text}] if text else []
    return chunks + [update_chunk(update) for update in updates]


class AgentFeatures:
    """The agent parts of the gateway (mixed into handlers.gateway.WebApiGateway)."""

    _streaming: bool
    _agent_features: dict[str, bool]  # by team: whether Slack has agent features there (absent: not asked yet)
    _warned: set[str]

    async def _call(
        self, team_id: str, method: str, make_call: Callable[[AsyncWebClient], Awaitable[AsyncSlackResponse]]
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _features_refused(self, team_id: str, what: str, exc: SlackError) -> bool:
        """Whether `exc` says the workspace has no agent features (then remembered, and logged once)."""
        if exc.code not in NO_AGENT_FEATURES:
            return False
        if self._agent_features.get(team_id) is not False:  # a supported way to run: said once, at INFO
            log.info(
                "workspace %s: Slack refused %s (%s): no agent sessions or streaming there; showing 👀 and updating "
                "messages instead (declare the app an agent: see manifest.yml)",
                team_id,
                what,
                exc.code,
            )
        self._agent_features[team_id] = False
        return True

    def _warn_once(self, team_id: str, data: dict[str, Any]) -> None:
        metadata = data.get("response_metadata") or {}
        warnings = [*(metadata.get("warnings") or []), *([data["warning"]] if data.get("warning") else [])]
        for warning in warnings:
            if f"{team_id}:{warning}" not in self._warned:
                self._warned.add(f"{team_id}:{warning}")
                log.warning("workspace %s: Slack warns %s (is the manifest up to date?)", team_id, warning)

    def _sessions_possible(self, thread: ThreadRef) -> bool:
        # A session belongs to a thread; a DM's top level (an agent of an older release) has none.
        return bool(thread.thread_ts) and self._agent_features.get(thread.team_id) is not False

    async def set_working(self, thread: ThreadRef, message_ts: str, working: bool, *, user_id: str = "") -> None:
        """The thread's session status (processing while working, active after); the 👀 reaction on the message
        where sessions are not available."""
        if self._sessions_possible(thread) and await self._set_session_status(thread, working, user_id):
            return
        if self._sessions_possible(thread) and self._agent_features.get(thread.team_id):
            return  # a status call that failed for a moment (logged): a reaction now might never be taken back

        def react(client: AsyncWebClient) -> Awaitable[AsyncSlackResponse]:
            method = client.reactions_add if working else client.reactions_remove
            return method(channel=thread.channel_id, timestamp=message_ts, name=WORKING_REACTION)

        try:
            await self._call(thread.team_id, "reactions.add" if working else "reactions.remove", react)
        except SlackError as exc:  # already there, already gone, or no permission: the answer matters, not this
            log.info("working indicator not %s: %s", "set" if working else "cleared", exc)

    async def _set_session_status(self, thread: ThreadRef, working: bool, user_id: str) -> bool:
        """Set the session's status; False when the reaction must do instead."""
        initiator = user_id if user_id[:1] in ("U", "W") else None  # a bot's id (B...) names no user

        def set_status(client: AsyncWebClient) -> Awaitable[AsyncSlackResponse]:
            return client.agents_sessions_setStatus(
                channel_id=thread.channel_id,
                thread_ts=thread.thread_ts,
                status="processing" if working else "active",
                initiator_user_id=initiator if working else None,
            )

        try:
            data = await self._call(thread.team_id, "agents.sessions.setStatus", set_status)
        except SlackError as exc:
            if not self._features_refused(thread.team_id, "agents.sessions.setStatus", exc):
                log.info("session status not set: %s", exc)
            return False
        self._agent_features[thread.team_id] = True
        self._warn_once(thread.team_id, data)
        return True

    async def rename_session(self, thread: ThreadRef, title: str) -> None:
        """Title the thread's session (best effort: a missing session or a refusal is logged, never raised)."""
        title = " ".join(title.split())[:SESSION_TITLE_CHARS]
        if not title or not self._sessions_possible(thread):
            return
        try:
            await self._call(
                thread.team_id,
                "agents.sessions.rename",
                lambda client: client.agents_sessions_rename(
                    channel_id=thread.channel_id, thread_ts=thread.thread_ts, title=title
                ),
            )
        except SlackError as exc:
            if not self._features_refused(thread.team_id, "agents.sessions.rename", exc):
                log.info("session not titled: %s", exc)

    async def start_stream(
        self, thread: ThreadRef, *, user_id: str, task_id: str, updates: Sequence[TaskUpdate] = ()
    ) -> str | None:
        """Start a streamed answer in the thread, to its asker, tagged with its task (so that a task resumed after a
        crash before it recorded the ts finds it); None where streaming is off, unavailable or refused."""
        if not self._streaming or not self._sessions_possible(thread) or user_id[:1] not in ("U", "W"):
            return None

        def start(client: AsyncWebClient) -> Awaitable[AsyncSlackResponse]:
            return client.chat_startStream(
                channel=thread.channel_id,
                thread_ts=thread.thread_ts,
                recipient_team_id=thread.team_id,
                recipient_user_id=user_id,
                chunks=stream_chunks("", updates),
                metadata=task_metadata(task_id),
            )

        try:
            data = await self._call(thread.team_id, "chat.startStream", start)
        except SlackError as exc:
            if not self._features_refused(thread.team_id, "chat.startStream", exc):
                log.info("answer not streamed: %s", exc)  # rate limited, a channel that cannot stream...
            return None
        self._agent_features[thread.team_id] = True
        return str(data["ts"])

    async def append_stream(
        self, thread: ThreadRef, ts: str, *, text: str = "", updates: Sequence[TaskUpdate] = ()
    ) -> None:
        """Append to a streamed answer; StreamClosed once Slack takes no more."""
        chunks = stream_chunks(text, updates)
        if chunks:
            await self._stream_call(
                thread.team_id,
                "chat.appendStream",
                lambda client: client.chat_appendStream(channel=thread.channel_id, ts=ts, chunks=chunks),
            )

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
        """End a streamed answer (the session goes back to active); StreamClosed when it had ended already."""

        def stop(client: AsyncWebClient) -> Awaitable[AsyncSlackResponse]:
            return client.chat_stopStream(
                channel=thread.channel_id,
                ts=ts,
                chunks=stream_chunks(text, updates) or None,
                blocks=[feedback_block(f"feedback-{ts}")] if feedback else None,
                metadata=task_metadata(task_id),
            )

        await self._stream_call(thread.team_id, "chat.stopStream", stop)

    async def _stream_call(
        self, team_id: str, method: str, make_call: Callable[[AsyncWebClient], Awaitable[AsyncSlackResponse]]
    ) -> None:
        try:
            await self._call(team_id, method, make_call)
        except SlackError as exc:
            if exc.code in STREAM_ENDED:
                raise StreamClosed(str(exc), exc.code) from None
            raise
