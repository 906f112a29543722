"""Agent sessions as FakeSlack keeps them: one per (channel, thread_ts), with its status, title and history."""

from __future__ import annotations

from dataclasses import dataclass, field

# The four statuses agents.sessions.setStatus takes; anything else is invalid_status.
SESSION_STATUSES = ("active", "processing", "suspended", "closed")
# A session title is 1 to 200 characters (setStatus's `title`, rename's required `title`).
MAX_SESSION_TITLE = 200


@dataclass
class AgentSession:
    """One agent session of a thread: what Slack shows above it, and every status it went through."""

    channel: str
    thread_ts: str
    status: str
    title: str | None = None
    initiator_user_id: str | None = None
    # Statuses in the order they were set, the first one included; a write that repeats the status adds nothing.
    history: list[str] = field(default_factory=list)
    # Titles it had, in order (creation, renames by the app or by people).
    titles: list[str] = field(default_factory=list)


class SessionBook:
    """The sessions of the workspace, keyed like Slack keys them: there is no session id, only channel and thread."""

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], AgentSession] = {}

    def get(self, channel: str, thread_ts: str) -> AgentSession | None:
        """The session of that thread, or None."""
        return self.sessions.get((channel, thread_ts))

    def write_status(
        self,
        channel: str,
        thread_ts: str,
        status: str,
        *,
        title: str | None = None,
        initiator_user_id: str | None = None,
    ) -> AgentSession:
        """Set the status, creating the session if needed; title and initiator count only at creation, as on Slack."""
        session = self.get(channel, thread_ts)
        if session is None:
            session = AgentSession(channel, thread_ts, status, title, initiator_user_id)
            if title:
                session.titles.append(title)
            self.sessions[(channel, thread_ts)] = session
        session.status = status
        if not session.history or session.history[-1] != status:
            session.history.append(status)
        return session

    def rename(self, channel: str, thread_ts: str, title: str) -> tuple[AgentSession, str | None]:
        """Give an existing session a new title; the session and its previous title (KeyError without a session)."""
        session = self.sessions[(channel, thread_ts)]
        previous, session.title = session.title, title
        session.titles.append(title)
        return session, previous


__all__ = ["MAX_SESSION_TITLE", "SESSION_STATUSES", "AgentSession", "SessionBook"]
