"""Agent session listeners: `agent_session_stopped`, sent when a person presses Stop on a session that is processing.

Slack has stopped the session's streams already; the app must stop its own work and move the session out of
processing. The answer does both as it ends: its worker (any process) cancels it at once (store/stops.py), and its
end sets the session back to active. The event names no session id: a session is its channel and thread; the team
id is on the envelope.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.core.ports import SlackGateway
from bot.tasks.intake import Intake
from store.models import ThreadRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionStopped:
    """A person pressed Stop on the session of a thread."""

    thread: ThreadRef
    user_id: str


def parse_session_stopped(body: dict[str, Any], event: dict[str, Any]) -> SessionStopped | None:
    """The event as a SessionStopped, or None if it is malformed (logged at WARNING)."""
    try:
        team_id = _text(body.get("team_id") or event["team"])
        thread = ThreadRef(team_id, _text(event["channel"]), _text(event.get("thread_ts", ""), empty=True))
        return SessionStopped(thread, _text(event["user"]))
    except (KeyError, TypeError, ValueError) as exc:
        # Bounded: the fields are whatever the sender wrote.
        log.warning("ignoring a malformed agent_session_stopped event: %s %.100s", type(exc).__name__, exc)
        return None


def _text(value: object, *, empty: bool = False) -> str:
    """A string field (Slack's ids and timestamps are strings); an empty one only where `empty` allows it."""
    if not isinstance(value, str) or (not value and not empty):
        raise TypeError(f"a {type(value).__name__} {value!r:.20} where Slack sends an id")
    return value


def register_session_listeners(app: AsyncApp, intake: Intake, slack: SlackGateway) -> None:
    """Attach the agent_session_stopped listener to the Bolt app."""

    async def handle_agent_session_stopped(body: dict[str, Any], event: dict[str, Any]) -> None:
        stopped = parse_session_stopped(body, event)
        if stopped is None:
            return
        outcome = await intake.stop(stopped.thread, stopped.user_id)
        if not outcome.stopping:
            # Nothing to stop, but Slack leaves the session as it was: it must not stay "processing".
            log.info("Stop pressed in thread %s with nothing running", stopped.thread.encode())
            thread = stopped.thread
            await slack.set_working(thread, thread.thread_ts, False, user_id=stopped.user_id)

    app.event("agent_session_stopped")(handle_agent_session_stopped)
