"""Event listeners: parse `app_mention` and `message` events and hand them to intake.

The app runs with process_before_response=True, so Slack's acknowledgement is sent only after a listener
returns: a listener that raises (Redis did not take the task) makes Bolt answer 500, and Slack redelivers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.tasks.intake import IncomingMessage, Intake
from store.models import SharedFile

log = logging.getLogger(__name__)

# Message subtypes that are a person saying something; edits, joins, deletions and the like are not.
_SPOKEN_SUBTYPES = {None, "file_share", "thread_broadcast"}
# An action token as Slack writes one ("12345.98765.abcd2358fdea"); anything else (or longer) is not kept in Redis.
_ACTION_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,256}")


def parse_message(
    body: dict[str, Any], event: dict[str, Any], *, allowed_bot_ids: frozenset[str] = frozenset()
) -> IncomingMessage | None:
    """The event as an IncomingMessage, or None if it is not someone saying something (edits, joins, bots...) or
    is malformed (a field missing or of a shape Slack never sends; logged once, at WARNING).

    Bots' messages count only from the bots in `allowed_bot_ids`: two bots answering each other never stop.
    """
    try:
        return _spoken_message(body, event, allowed_bot_ids)
    except (KeyError, TypeError, ValueError) as exc:
        # Only Slack, or someone holding the signing secret, gets this far; acknowledged, as a retry would not parse
        # either. Bounded: the fields are whatever the sender wrote.
        log.warning("ignoring a malformed %.40s event: %s %.100s", event.get("type"), type(exc).__name__, exc)
        return None


def _spoken_message(
    body: dict[str, Any], event: dict[str, Any], allowed_bot_ids: frozenset[str]
) -> IncomingMessage | None:
    subtype = _optional_text(event.get("subtype"))
    from_bot = bool(event.get("bot_id")) or subtype == "bot_message"
    allowed_bot = from_bot and str(event.get("bot_id", "")) in allowed_bot_ids
    if from_bot and not allowed_bot:
        return None
    if subtype not in _SPOKEN_SUBTYPES and not (allowed_bot and subtype == "bot_message"):
        return None
    message = IncomingMessage(
        event_id=str(body["event_id"]),
        team_id=str(body.get("team_id") or event["team"]),
        channel_id=str(event["channel"]),
        user_id=str(event.get("user") or event["bot_id"]),
        text=str(event.get("text", "")),
        ts=_text(event["ts"]),  # Slack's timestamps are strings: a number has lost digits already
        thread_ts=_optional_text(event.get("thread_ts")) or None,
        is_direct_message=event.get("channel_type") == "im",
        files=parse_files(event.get("files")),
        from_bot=allowed_bot,
        action_token=_action_token(event.get("action_token")),
    )
    message.thread()  # ids that cannot name a thread (a ':' in a channel id) raise ValueError here, not in intake
    return message


def _action_token(value: object) -> str | None:
    """The event's action token (what lets the agent search Slack as the writer), if it looks like one."""
    return value if isinstance(value, str) and _ACTION_TOKEN.fullmatch(value) else None


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} where Slack sends a string")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def parse_files(raw: object) -> tuple[SharedFile, ...]:
    """The files shared with a message; entries without an id or a URL (deleted, hidden) are left out. A remote file
    (mode "external": a link to a document kept elsewhere) keeps its mode, so that it is named and never fetched.
    A size that is not a whole number raises TypeError."""
    if not isinstance(raw, list):
        return ()
    files: list[SharedFile] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        url = item.get("url_private_download") or item.get("url_private")
        external = item.get("is_external") is True or item.get("mode") == "external"
        if not item.get("id") or not (url or external):
            continue
        files.append(
            SharedFile(
                file_id=str(item["id"]),
                name=str(item.get("name") or item.get("title") or item["id"]),
                mimetype=str(item.get("mimetype") or "application/octet-stream"),
                size=_size(item.get("size")),
                url=str(url or ""),
                mode="external" if external else str(item.get("mode") or "hosted"),
            )
        )
    return tuple(files)


def _size(value: object) -> int:
    # Slack sends a whole number of bytes (none for some remote files); a float would even parse as infinity.
    if value is None:
        return 0
    if not isinstance(value, int):
        raise TypeError(f"a file size that is a {type(value).__name__}")
    return value


def register_event_listeners(app: AsyncApp, intake: Intake, *, allowed_bot_ids: frozenset[str] = frozenset()) -> None:
    """Attach the mention and message listeners to the Bolt app."""

    async def handle_app_mention(body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        message = parse_message(body, event, allowed_bot_ids=allowed_bot_ids)
        if message is None or message.user_id == context.bot_user_id:
            return
        await intake.mention(message, context.bot_user_id or "")

    async def handle_message(body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        message = parse_message(body, event, allowed_bot_ids=allowed_bot_ids)
        bot_user_id = context.bot_user_id or ""
        if message is None or message.user_id == bot_user_id:
            return
        if message.is_direct_message:
            # In a DM every message is for the bot (Slack sends no app_mention there): a top-level one starts a
            # thread, and its agent, of its own; a reply goes to its thread's agent.
            await intake.mention(message, bot_user_id)
        elif f"<@{bot_user_id}" in message.text:
            return  # the app_mention event for this same message does the work
        elif message.thread_ts:
            await intake.thread_message(message)

    app.event("app_mention")(handle_app_mention)
    app.event("message")(handle_message)
