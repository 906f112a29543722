"""Builders for signed Slack HTTP requests and Events API, slash command and interactivity payloads in wire shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlencode

DEFAULT_TEAM_ID = "T0TEAM"
DEFAULT_BOT_USER_ID = "U0BOT"
DEFAULT_BOT_ID = "B0BOT"
DEFAULT_APP_ID = "A0APP"
# Slack still sends the deprecated verification token in every payload; apps should ignore it.
VERIFICATION_TOKEN = "fake-verification-token"


class _TsClock:
    """Process-wide source of Slack `ts` values, shared by payload builders and FakeSlack."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_us = 0

    def next(self) -> str:
        """Return a ts strictly greater than any ts issued or observed so far, close to wall-clock time."""
        with self._lock:
            # A ts is "<unix seconds>.<6-digit microseconds>": unique per channel and ordered like time.
            self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
            return format_ts(self._last_us)

    def observe(self, ts: str) -> None:
        """Make sure later ts values sort after `ts` (used when tests seed explicit timestamps)."""
        with self._lock:
            self._last_us = max(self._last_us, ts_to_micros(ts))


def ts_to_micros(ts: str) -> int:
    """Convert a Slack ts string ("1700000000.000100") to integer microseconds for exact ordering."""
    seconds, _, frac = ts.partition(".")
    return int(seconds) * 1_000_000 + int((frac + "000000")[:6])


def format_ts(micros: int) -> str:
    """Format integer microseconds as a Slack ts string with exactly six fractional digits."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


_clock = _TsClock()


def new_ts() -> str:
    """Return a new unique, strictly increasing Slack ts string."""
    return _clock.next()


def observe_ts(ts: str) -> None:
    """Advance the shared ts clock past `ts` so generated timestamps never collide with seeded ones."""
    _clock.observe(ts)


def sign(signing_secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Return the X-Slack-Signature / X-Slack-Request-Timestamp headers Slack would send for `body`."""
    ts = int(time.time()) if timestamp is None else timestamp
    # Slack signs the literal bytes "v0:<timestamp>:<raw body>" with HMAC-SHA256 and hex-encodes the digest.
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(ts)}


def signed_event_request(
    envelope: dict[str, Any],
    signing_secret: str,
    *,
    retry_num: int | None = None,
    retry_reason: str | None = None,
    timestamp: int | None = None,
) -> tuple[str, dict[str, str]]:
    """Serialize an Events API envelope and return (body, headers) exactly as Slack POSTs it."""
    body = json.dumps(envelope)
    headers = {"Content-Type": "application/json", **sign(signing_secret, body, timestamp)}
    # Slack re-delivers unacknowledged events with these headers (reasons: http_timeout, http_error, ...).
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
    if retry_reason is not None:
        headers["X-Slack-Retry-Reason"] = retry_reason
    return body, headers


def signed_form_request(form_body: str, signing_secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Return headers for a signed urlencoded POST (slash commands, interactivity) of `form_body`."""
    return {"Content-Type": "application/x-www-form-urlencoded", **sign(signing_secret, form_body, timestamp)}


def _event_context(event: dict[str, Any], team_id: str, api_app_id: str) -> str:
    # Slack's event_context is an opaque "4-" prefixed base64url JSON blob; apps only pass it back.
    raw = json.dumps({"et": event.get("type"), "tid": team_id, "aid": api_app_id, "cid": event.get("channel")})
    return "4-" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def event_envelope(
    event: dict[str, Any],
    *,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
    event_id: str | None = None,
    event_time: int | None = None,
    bot_user_id: str = DEFAULT_BOT_USER_ID,
    enterprise_id: str | None = None,
    is_enterprise_install: bool = False,
) -> dict[str, Any]:
    """Wrap `event` in the Events API "event_callback" outer envelope.

    With `is_enterprise_install` (the app is installed org-wide on `enterprise_id`) the event still names the
    workspace it happened in (team_id), but its authorization is the org's: team_id null, is_enterprise_install true.
    """
    envelope: dict[str, Any] = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": enterprise_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()) if event_time is None else event_time,
        # One entry per installation that can see the event; the bot's own user id is the one to ignore.
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": None if is_enterprise_install else team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": is_enterprise_install,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": _event_context(event, team_id, api_app_id),
    }
    # Workspaces of an Enterprise Grid org name it at the top level too.
    if enterprise_id is not None:
        envelope["enterprise_id"] = enterprise_id
    return envelope


def app_uninstalled_event() -> dict[str, Any]:
    """The inner `app_uninstalled` event: it names nothing; the envelope's team_id says which workspace left."""
    return {"type": "app_uninstalled"}


def tokens_revoked_event(*, bot_user_ids: list[str], user_ids: list[str]) -> dict[str, Any]:
    """The inner `tokens_revoked` event: user ids (not tokens) by kind, "oauth" for user tokens, "bot" for bots."""
    tokens: dict[str, list[str]] = {}
    if user_ids:
        tokens["oauth"] = user_ids
    if bot_user_ids:
        tokens["bot"] = bot_user_ids
    return {"type": "tokens_revoked", "tokens": tokens}


def url_verification(challenge: str = "fake-challenge") -> dict[str, Any]:
    """Return the one-off "url_verification" body Slack sends when the Request URL is configured."""
    return {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}


_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def rich_text_blocks(text: str) -> list[dict[str, Any]]:
    """Build the rich_text block Slack clients attach to typed messages, with user mentions as elements."""
    elements: list[dict[str, Any]] = []
    pos = 0
    for match in _MENTION.finditer(text):
        if match.start() > pos:
            elements.append({"type": "text", "text": text[pos : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        pos = match.end()
    if pos < len(text):
        elements.append({"type": "text", "text": text[pos:]})
    block_id = base64.b32encode(uuid.uuid4().bytes[:5]).decode()[:5]
    section = {"type": "rich_text_section", "elements": elements}
    return [{"type": "rich_text", "block_id": block_id, "elements": [section]}]


def _user_message_fields(text: str, user: str, channel: str, ts: str | None, team: str) -> dict[str, Any]:
    ts = ts or new_ts()
    return {
        "user": user,
        "text": text,
        "ts": ts,
        # Human-typed messages carry a client_msg_id UUID; bot posts never do.
        "client_msg_id": str(uuid.uuid4()),
        "team": team,
        "blocks": rich_text_blocks(text),
        "channel": channel,
        "event_ts": ts,
    }


def _file_fields(files: list[dict[str, Any]] | None) -> dict[str, Any]:
    # A message sharing files carries them with upload/display_as_bot (upload is False when the client uploaded first).
    return {} if not files else {"files": files, "upload": False, "display_as_bot": False}


def app_mention_event(
    text: str,
    *,
    user: str,
    channel: str,
    ts: str | None = None,
    thread_ts: str | None = None,
    team: str = DEFAULT_TEAM_ID,
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return an `app_mention` inner event; `text` should contain the "<@BOTID>" mention as Slack sends it.

    With `files` (Slack file objects) it carries them like the message does, but app_mention has no subtype.
    """
    event: dict[str, Any] = {"type": "app_mention", **_user_message_fields(text, user, channel, ts, team)}
    event.update(_file_fields(files))
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def message_event(
    text: str,
    *,
    user: str,
    channel: str,
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    bot_id: str | None = None,
    subtype: str | None = None,
    team: str = DEFAULT_TEAM_ID,
    parent_user_id: str | None = None,
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return a `message` inner event (message.channels / message.im ...) with the real field names.

    With `files` (Slack file objects) the subtype defaults to "file_share", which `message` listeners must allow.
    """
    event: dict[str, Any] = {"type": "message", **_user_message_fields(text, user, channel, ts, team)}
    event.update(_file_fields(files))
    if files and subtype is None:
        subtype = "file_share"
    if subtype is not None:
        event["subtype"] = subtype
    if bot_id is not None:
        event["bot_id"] = bot_id
        event["app_id"] = DEFAULT_APP_ID
        del event["client_msg_id"]
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        if parent_user_id is not None:
            event["parent_user_id"] = parent_user_id
    # channel_type is only present on message.* events: channel, group, im or mpim.
    event["channel_type"] = channel_type
    return event


def hooks_url(kind: str, team_id: str = DEFAULT_TEAM_ID) -> str:
    """Return a response_url shaped like Slack's ("commands" or "actions"); FakeSlack.response_url mints live ones."""
    return f"https://hooks.slack.com/{kind}/{team_id}/{uuid.uuid4().int % 10**13}/{uuid.uuid4().hex[:24]}"


def _trigger_id() -> str:
    return f"1.{int(time.time())}.{uuid.uuid4().hex[:16]}"


def slash_command_fields(
    command: str,
    text: str,
    *,
    team_id: str = DEFAULT_TEAM_ID,
    channel_id: str,
    user_id: str,
    team_domain: str = "fake-team",
    channel_name: str = "general",
    user_name: str = "someone",
    api_app_id: str = DEFAULT_APP_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
    is_enterprise_install: bool = False,
) -> dict[str, str]:
    """Return slash command fields as a flat str->str dict (the Socket Mode payload shape).

    In a workspace of an Enterprise Grid org the fields name the org too (enterprise_id, enterprise_name);
    `is_enterprise_install` says the app is installed org-wide, whose response_urls name the org, not the workspace.
    """
    fields = {"token": VERIFICATION_TOKEN, "team_id": team_id, "team_domain": team_domain}
    if enterprise_id is not None:
        fields.update(enterprise_id=enterprise_id, enterprise_name=enterprise_name or enterprise_id)
    hooks_owner = enterprise_id if is_enterprise_install and enterprise_id else team_id
    return {
        **fields,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        # Booleans in slash command forms are the strings "true"/"false".
        "is_enterprise_install": "true" if is_enterprise_install else "false",
        "response_url": response_url or hooks_url("commands", hooks_owner),
        "trigger_id": trigger_id or _trigger_id(),
    }


def slash_command_form(
    command: str,
    text: str,
    *,
    team_id: str = DEFAULT_TEAM_ID,
    channel_id: str,
    user_id: str,
    **extra: Any,
) -> str:
    """Return the application/x-www-form-urlencoded body Slack POSTs for a slash command (`extra`: the other
    arguments of `slash_command_fields`)."""
    fields = slash_command_fields(command, text, team_id=team_id, channel_id=channel_id, user_id=user_id, **extra)
    return urlencode(fields)


def button_element(action_id: str, text: str, value: str | None = None, *, style: str | None = None) -> dict[str, Any]:
    """Return a Block Kit button element as an app posts it inside an actions block (or as a section accessory)."""
    element: dict[str, Any] = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}
    if value is not None:
        element["value"] = value
    if style is not None:
        element["style"] = style
    return element


def block_actions_payload(
    action_id: str,
    value: str | None = None,
    *,
    team_id: str = DEFAULT_TEAM_ID,
    channel_id: str,
    user_id: str,
    response_url: str | None = None,
    message_ts: str | None = None,
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    thread_ts: str | None = None,
    block_id: str = "actions",
    text: str = "Click",
    style: str | None = None,
    user_name: str = "someone",
    team_domain: str = "fake-team",
    channel_name: str = "general",
    api_app_id: str = DEFAULT_APP_ID,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
    is_enterprise_install: bool = False,
) -> dict[str, Any]:
    """Return the "block_actions" payload Slack sends when a user clicks a button in a message.

    `message` is the clicked message as stored (it supplies message_ts and thread_ts); without it a bot message
    holding just this button is made up. Ephemeral messages are not stored by Slack, so their payload has no
    "message", only the container's message_ts. In a workspace of an Enterprise Grid org `team` and `enterprise`
    name the org; for an org-wide install (`is_enterprise_install`) `team` is null and only `user.team_id` says
    which workspace the click came from.
    """
    button = button_element(action_id, text, value, style=style)
    if message is not None:
        message_ts, thread_ts = message["ts"], message.get("thread_ts", thread_ts)
    message_ts = message_ts or new_ts()
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    if thread_ts is not None:
        container["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id or _trigger_id(),
        **_interaction_team(team_id, team_domain, enterprise_id, enterprise_name, is_enterprise_install),
        "channel": {"id": channel_id, "name": channel_name},
    }
    if not is_ephemeral:
        if message is None:
            message = {
                "type": "message",
                "user": DEFAULT_BOT_USER_ID,
                "bot_id": DEFAULT_BOT_ID,
                "app_id": api_app_id,
                "text": text,
                "ts": message_ts,
                "team": team_id,
                "blocks": [{"type": "actions", "block_id": block_id, "elements": [button]}],
            }
            if thread_ts is not None:
                message["thread_ts"] = thread_ts
        payload["message"] = message
    # Message payloads carry the state of any input elements in the message, empty when it has none.
    payload["state"] = {"values": {}}
    hooks_owner = enterprise_id if is_enterprise_install and enterprise_id else team_id
    payload["response_url"] = response_url or hooks_url("actions", hooks_owner)
    # Each action echoes the element's fields plus where it sits and when it was clicked.
    payload["actions"] = [{**button, "block_id": block_id, "action_ts": new_ts()}]
    return payload


def _interaction_team(
    team_id: str, team_domain: str, enterprise_id: str | None, enterprise_name: str | None, org_install: bool
) -> dict[str, Any]:
    """The team, enterprise and is_enterprise_install fields of an interaction payload."""
    if enterprise_id is None:
        return {"team": {"id": team_id, "domain": team_domain}, "enterprise": None, "is_enterprise_install": False}
    enterprise = {"id": enterprise_id, "name": enterprise_name or enterprise_id}
    if org_install:
        # An org-wide install is no workspace's: Slack sends team null, the workspace only as user.team_id.
        return {"team": None, "enterprise": enterprise, "is_enterprise_install": True}
    team = {"id": team_id, "domain": team_domain, "enterprise_id": enterprise_id, "enterprise_name": enterprise["name"]}
    return {"team": team, "enterprise": enterprise, "is_enterprise_install": False}


def block_actions_form(payload: dict[str, Any]) -> str:
    """Return the urlencoded body Slack POSTs to the interactivity Request URL: one `payload` field of JSON."""
    return urlencode({"payload": json.dumps(payload)})


def agent_session_stopped_event(
    *, channel: str, user: str, thread_ts: str, streaming_message_ts: list[str]
) -> dict[str, Any]:
    """Return the `agent_session_stopped` inner event: a person pressed Stop on a session that was processing.

    `streaming_message_ts` lists the app's streams Slack has already stopped ([] if none was running). There is no
    session id (a session is its channel and thread) and no team id: that is on the envelope.
    """
    return {
        "type": "agent_session_stopped",
        "channel": channel,
        "user": user,
        "thread_ts": thread_ts,
        "streaming_message_ts": list(streaming_message_ts),
        "event_ts": new_ts(),
    }


def agent_session_title_changed_event(
    *, channel: str, thread_ts: str, title: str, previous_title: str | None, user: str, team_id: str = DEFAULT_TEAM_ID
) -> dict[str, Any]:
    """Return the `agent_session_title_changed` inner event: a person renamed a session.

    `previous_title` is left out when the session had no title before.
    """
    event: dict[str, Any] = {"type": "agent_session_title_changed", "channel": channel, "thread_ts": thread_ts}
    event["title"] = title
    if previous_title is not None:
        event["previous_title"] = previous_title
    event.update(team_id=team_id, user=user, event_ts=new_ts())
    return event


def app_home_opened_event(*, user: str, channel: str, tab: str = "messages") -> dict[str, Any]:
    """Return the `app_home_opened` inner event; with tab "messages" it is what an agent app greets a person on.

    Slack sends it every time the person opens the tab. `view` is only there for the Home tab once one was published.
    """
    if tab not in ("home", "messages"):
        raise ValueError(f"tab must be 'home' or 'messages', not {tab!r}")
    return {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": new_ts()}
