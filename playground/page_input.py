"""What the playground page may send: its person, its conversations, and the checks on every request it makes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

Args = dict[str, Any]
ME = ("U0YOU", "you", "You")
CHANNELS = {"C0GENERAL": "general", "C0RANDOM": "random"}
# The person's DM with the app: its Messages tab. DM ids start with D (see FakeSlack.dm_channel).
DM_CHANNEL = "D" + ME[0].removeprefix("U")
MAX_TEXT = 40_000


class PageInputError(ValueError):
    """A request from the page that cannot be carried out; its text is shown to the person."""


async def json_object(request: web.Request) -> Args:
    """The request's JSON object body."""
    try:
        body = await request.json()
    except ValueError:
        raise PageInputError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise PageInputError("the request body must be a JSON object")
    return body


def channel_of(body: Args) -> str:
    """The body's `channel`: one of the playground's channels or the DM with the app."""
    channel = body.get("channel")
    if channel not in CHANNELS and channel != DM_CHANNEL:
        raise PageInputError(f"unknown channel {channel!r}; the playground has {', '.join([*CHANNELS, DM_CHANNEL])}")
    return str(channel)


def text_of(body: Args) -> str:
    """The body's `text`: not blank, and no longer than a Slack message."""
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise PageInputError("write something first")
    if len(text) > MAX_TEXT:
        raise PageInputError(f"a message holds at most {MAX_TEXT} characters")
    return text


def ts_of(body: Args, name: str) -> str:
    """A required ts field of the body."""
    ts = body.get(name)
    if not isinstance(ts, str) or not ts:
        raise PageInputError(f"{name} is missing")
    return ts


def bad(message: str) -> web.Response:
    """The answer to a request the page should not have made, shown to the person."""
    return web.json_response({"ok": False, "error": message}, status=400)
