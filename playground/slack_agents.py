"""Agent side of FakeSlack: sessions (agents.sessions.*), suggested prompts, and what people do to an agent app.

What people do (press Stop, rename a session, open the Messages tab, click feedback buttons) returns the payload
Slack would send the app, for the test or the playground to deliver.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .payloads import (
    agent_session_stopped_event,
    agent_session_title_changed_event,
    app_home_opened_event,
    block_actions_payload,
)
from .slack_sessions import MAX_SESSION_TITLE, SESSION_STATUSES, AgentSession, SessionBook
from .slack_store import SlackApiFailure
from .slack_streams import SlackStreamsMixin

Args = dict[str, Any]
# assistant.threads.setSuggestedPrompts takes "up to four" prompts.
MAX_SUGGESTED_PROMPTS = 4


class SlackAgentsMixin(SlackStreamsMixin):
    """Adds agent sessions, suggested prompts, Stop, renames and feedback clicks to FakeSlack.

    `agent_features = False` makes the workspace one without agent features (older workspaces, apps not declared
    as agents): the session and streaming methods answer feature_disabled, setSuggestedPrompts not_agent_app.
    """

    _users: dict[str, Args]

    if TYPE_CHECKING:

        def response_url(self, kind: str = "commands", *, uses: int = 5, ttl: float = 1800.0) -> str: ...

    def _init_agents(self) -> None:
        self.agent_features = True
        self.agent_sessions = SessionBook()
        # What setSuggestedPrompts (without thread_ts) pinned to each DM's Messages tab, per workspace (two may
        # have the same DM ids): prompts and heading.
        self._prompts_by_team: dict[str, tuple[dict[str, list[Args]], dict[str, str | None]]] = {}
        self._init_streams()

    def _agent_handlers(self) -> dict[str, Callable[[Args], Args]]:
        return {
            "agents.sessions.setStatus": self._sessions_set_status,
            "agents.sessions.rename": self._sessions_rename,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
            **self._stream_handlers(),
        }

    # ------------------------------------------------------------------ inspection

    @property
    def suggested_prompts(self) -> dict[str, list[Args]]:
        """The prompts pinned to each DM's Messages tab in the workspace in play, by DM channel."""
        return self._prompts_by_team.setdefault(self.team_id, ({}, {}))[0]

    @property
    def suggested_prompts_title(self) -> dict[str, str | None]:
        """The heading above those prompts, by DM channel."""
        return self._prompts_by_team.setdefault(self.team_id, ({}, {}))[1]

    def session(self, channel: str, thread_ts: str) -> AgentSession:
        """The thread's agent session: status, title, history of statuses (LookupError if it has none)."""
        found = self.agent_sessions.get(channel, thread_ts)
        if found is None:
            raise LookupError(f"no agent session for thread {thread_ts} in {channel}")
        self.streams_of(channel, thread_ts)  # ends the streams past their lifetime, which sets the session active
        return found

    def has_session(self, channel: str, thread_ts: str) -> bool:
        """True once the thread has an agent session."""
        return self.agent_sessions.get(channel, thread_ts) is not None

    @staticmethod
    def dm_channel(user: str) -> str:
        """The id of the app's DM (its Messages tab) with `user`; DM ids start with D."""
        return "D" + user.removeprefix("U").removeprefix("W")

    # ------------------------------------------------------------------ what people do

    def press_stop(self, channel: str, thread_ts: str, user: str = "U0HUMAN") -> Args:
        """`user` presses Stop on the thread's session: Slack stops its streams at once (later appends get
        stopped_by_user) and returns the agent_session_stopped envelope to deliver. The status stays as it was:
        moving the session out of processing is the app's job.

        Slack shows the button only while the session is processing, so pressing it otherwise is a LookupError.
        """
        session = self.session(channel, thread_ts)
        if session.status != "processing":
            raise LookupError(f"the session is {session.status}: Slack shows Stop only while it is processing")
        stopped = []
        for stream in self.streams_of(channel, thread_ts):
            if stream.state == "streaming":
                stream.state = "stopped_by_user"
                stopped.append(stream.ts)
        event = agent_session_stopped_event(
            channel=channel, user=user, thread_ts=thread_ts, streaming_message_ts=stopped
        )
        return self._envelope(event)

    def rename_session_as_user(self, channel: str, thread_ts: str, title: str, user: str = "U0HUMAN") -> Args:
        """`user` retitles the thread's session in Slack; the agent_session_title_changed envelope to deliver."""
        if not 1 <= len(title) <= MAX_SESSION_TITLE:
            raise ValueError(f"a session title has 1 to {MAX_SESSION_TITLE} characters")
        self.session(channel, thread_ts)
        _, previous = self.agent_sessions.rename(channel, thread_ts, title)
        event = agent_session_title_changed_event(
            channel=channel, thread_ts=thread_ts, title=title, previous_title=previous, user=user, team_id=self.team_id
        )
        return self._envelope(event)

    def open_messages_tab(self, user: str = "U0HUMAN", *, tab: str = "messages") -> Args:
        """`user` opens the app's Messages tab (or Home): the app_home_opened envelope, sent on every opening."""
        return self._envelope(app_home_opened_event(user=user, channel=self.dm_channel(user), tab=tab))

    def click_feedback(self, channel: str, ts: str, positive: bool, *, user: str = "U0HUMAN") -> Args:
        """The block_actions payload of `user` clicking the thumbs up (positive) or down of a message's feedback
        buttons. The stored message must carry a context_actions block with a feedback_buttons element."""
        message = self.store.get(channel, ts)
        if message is None:
            raise LookupError(f"no message {ts} in {channel}")
        block, element = find_feedback_buttons(message.get("blocks") or [])
        button = element["positive_button" if positive else "negative_button"]
        block_id = block.setdefault("block_id", uuid.uuid4().hex[:5])  # Slack names every block when posting
        payload = block_actions_payload(
            str(element.get("action_id") or ""),
            team_id=self.team_id,
            channel_id=channel,
            user_id=user,
            response_url=self.response_url("actions"),
            message=self.store.view(channel, message),
            user_name=self._users.get(user, {}).get("name", "someone"),
            channel_name="directmessage" if channel.startswith("D") else "general",
            api_app_id=self.app_id,
            **self.install_fields(),
        )
        # Which button was clicked shows only in the value (and text): there is no positive/negative flag.
        action = {"type": "feedback_buttons", "action_id": element.get("action_id"), "block_id": block_id}
        action.update(value=button["value"], text=button["text"], action_ts=payload["actions"][0]["action_ts"])
        payload["actions"] = [action]
        return payload

    def _envelope(self, event: Args) -> Args:
        return self.workspace_envelope(event)

    # ------------------------------------------------------------------ Web API methods

    def _session_target(self, args: Args) -> tuple[str, str]:
        """Channel and thread of a session call, with the errors Slack checks first."""
        if not self.agent_features:
            raise SlackApiFailure("feature_disabled")  # "agent tasks feature is not enabled for this workspace"
        channel = str(args.get("channel_id") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        return channel, str(args.get("thread_ts") or "")

    def _sessions_set_status(self, args: Args) -> Args:
        channel, thread_ts = self._session_target(args)
        status = args.get("status")
        if status not in SESSION_STATUSES:
            raise SlackApiFailure("invalid_status")
        if not thread_ts:  # the fake has no session channels, where a thread_ts is refused instead
            raise SlackApiFailure("thread_ts_required")
        title = args.get("title")
        if title is not None and (not isinstance(title, str) or len(title) > MAX_SESSION_TITLE):
            raise SlackApiFailure("invalid_arguments")
        session = self.agent_sessions.write_status(
            channel, thread_ts, str(status), title=title or None, initiator_user_id=args.get("initiator_user_id")
        )
        # `status` is the session's, across all its agents; `agent_status` what this call wrote (one agent here).
        body: Args = {"status": session.status, "agent_status": status}
        if session.title is not None:
            body["title"] = session.title
        return body

    def _sessions_rename(self, args: Args) -> Args:
        channel, thread_ts = self._session_target(args)
        title = args.get("title")
        if not isinstance(title, str) or not 1 <= len(title) <= MAX_SESSION_TITLE:
            raise SlackApiFailure("invalid_arguments")
        if not thread_ts:
            raise SlackApiFailure("thread_ts_required")
        if self.agent_sessions.get(channel, thread_ts) is None:
            raise SlackApiFailure("session_not_found")  # rename never creates a session
        self.agent_sessions.rename(channel, thread_ts, title)
        return {"title": title}

    def _set_suggested_prompts(self, args: Args) -> Args:
        if not self.agent_features:
            raise SlackApiFailure("not_agent_app")
        channel = str(args.get("channel_id") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        prompts = args.get("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= MAX_SUGGESTED_PROMPTS:
            raise SlackApiFailure("invalid_arguments")
        for prompt in prompts:
            if not isinstance(prompt, dict) or not all(
                isinstance(prompt.get(name), str) and prompt[name] for name in ("title", "message")
            ):
                raise SlackApiFailure("invalid_arguments")
        if args.get("thread_ts"):
            # Slack: including thread_ts in a call for an agent app "will cause the call to silently fail".
            return {}
        self.suggested_prompts[channel] = [{"title": p["title"], "message": p["message"]} for p in prompts]
        self.suggested_prompts_title[channel] = args.get("title")
        return {}


def find_feedback_buttons(blocks: list[Args]) -> tuple[Args, Args]:
    """The context_actions block of a message's blocks and its feedback_buttons element (LookupError if none)."""
    for block in blocks:
        if block.get("type") != "context_actions":
            continue
        for element in block.get("elements", []):
            if isinstance(element, dict) and element.get("type") == "feedback_buttons":
                return block, element
    raise LookupError("the message has no context_actions block with feedback_buttons")


__all__ = ["MAX_SUGGESTED_PROMPTS", "SlackAgentsMixin", "find_feedback_buttons"]
