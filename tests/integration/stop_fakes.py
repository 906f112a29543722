"""What the stop tests and the stop benchmark need of the fakes: the model watched for closed streams, and Slack's
agent_session_stopped event (built here from SLACK_AGENT_DOCS.md §2 until FakeSlack can press Stop itself)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from playground.anthropic_api import Body, FakeAnthropic, Reply
from playground.payloads import event_envelope, new_ts
from playground.slack import FakeSlack


class WatchedAnthropic(FakeAnthropic):
    """FakeAnthropic noting, for every streamed answer, when it ended and whether the client had gone by then.

    A client that closes the stream is seen at the next piece the fake writes (its write finds the connection
    closing), so the time is exact to within the reply's chunk_delay.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stream_ends: list[tuple[float, bool]] = []  # (time.monotonic(), closed by the client)

    async def _stream(
        self,
        request: web.Request,
        message: Body,
        reply: Reply,
        headers: dict[str, str],
        partial_json: str | None = None,
    ) -> Any:
        try:
            return await super()._stream(request, message, reply, headers, partial_json)
        finally:
            transport = request.transport
            self.stream_ends.append((time.monotonic(), transport is None or transport.is_closing()))


def stop_pressed(slack: FakeSlack, channel: str, thread_ts: str, user: str) -> dict[str, Any]:
    """The envelope Slack sends when `user` presses Stop on the thread's session: the team is on the envelope only,
    and the streams Slack stopped itself are listed (none here: the bot streams by editing its message)."""
    event = {
        "type": "agent_session_stopped",
        "channel": channel,
        "user": user,
        "thread_ts": thread_ts,
        "streaming_message_ts": [],
        "event_ts": new_ts(),
    }
    return event_envelope(event, team_id=slack.team_id, api_app_id=slack.app_id, bot_user_id=slack.bot_user_id)
