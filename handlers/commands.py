"""The `/agent` slash command listener: parse the command text and a thread link, answer ephemerally."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.commands import HELP, AgentCommands

# A message link: https://team.slack.com/archives/C123/p1700000000000100[?thread_ts=1700000000.000050&cid=C123]
_LINK = re.compile(r"/archives/(?P<channel>[A-Z0-9]+)/p(?P<seconds>\d{10})(?P<micros>\d{6})(?:\?(?P<query>[^\s>|]*))?")
_THREAD_TS = re.compile(r"(?:^|&)thread_ts=(?P<ts>\d+\.\d+)")


@dataclass(frozen=True)
class ThreadLink:
    """The thread a Slack message link points into."""

    channel_id: str
    thread_ts: str


def parse_thread_link(text: str) -> ThreadLink | None:
    """The thread of a message link (a reply's link carries its thread's ts in `thread_ts`)."""
    match = _LINK.search(text)
    if match is None:
        return None
    thread = _THREAD_TS.search(match["query"] or "")
    ts = thread["ts"] if thread else f"{match['seconds']}.{match['micros']}"
    return ThreadLink(match["channel"], ts)


def register_command_listeners(app: AsyncApp, commands: AgentCommands) -> None:
    """Attach the `/agent` listener."""

    async def handle_agent_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        words = str(command.get("text", "")).split()
        action = words[0].lower() if words else "help"
        team_id, channel_id = str(command["team_id"]), str(command["channel_id"])
        link = parse_thread_link(" ".join(words[1:]))
        if link is not None and link.channel_id != channel_id:
            await ack(text="Run this in the channel of that thread.", response_type="ephemeral")
            return
        thread_ts = link.thread_ts if link else None
        if action == "status":
            reply = await commands.status(team_id, channel_id, thread_ts)
        elif action == "reset":
            request_id = f"cmd-{command.get('trigger_id') or command.get('user_id')}-{thread_ts}"
            reply = await commands.reset(team_id, channel_id, thread_ts, str(command["user_id"]), request_id)
        else:
            reply = HELP
        await ack(text=reply, response_type="ephemeral")

    app.command("/agent")(handle_agent_command)
