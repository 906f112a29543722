"""The outbound Slack adapter: the SlackGateway port on slack_sdk's AsyncWebClient, whose handlers do the retries."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import urljoin

from aiohttp import ClientError, ClientResponse, ClientSession
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from yarl import URL

from bot.core.errors import SlackError
from bot.core.ports import ThreadMessage, ThreadTail, UserTimeZone
from handlers import thread_pages
from handlers.agent_gateway import TASK_EVENT_TYPE, AgentFeatures, task_metadata
from handlers.feedback import feedback_block
from handlers.search_gateway import SearchContext
from handlers.team_bots import REFUSED_TOKEN, TeamBot, TeamBots, send
from handlers.thread_pages import Page
from store.models import ThreadRef

log = logging.getLogger(__name__)

RESET_EVENT_TYPE = "agent_reset"
# Slack renders `markdown_text` as standard Markdown (what Claude writes) but takes at most 12,000 characters;
# longer answers go out as plain `text`.
MARKDOWN_LIMIT = 12_000
# Shared files' url_private(_download) are on files.slack.com; the bot token goes nowhere else (a remote file's URL,
# for one, is chosen by whoever added it).
SLACK_FILES_ORIGIN = ("https", "files.slack.com", 443)
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
MAX_FILE_REDIRECTS = 3
# A task's message is posted moments after the ts it is searched after: five pages (1,000 messages) hold any
# thread's traffic of those moments, and bound what a search costs in a busy thread.
MAX_FIND_PAGES = 5
# People's time zones are kept this long (a zone rarely changes; a scheduling agent asks for it at each call) and for
# at most this many people (the oldest kept is dropped first).
TIME_ZONE_SECONDS = 3600.0
TIME_ZONES_KEPT = 10_000


def _message_body(text: str, *, feedback_id: str | None = None) -> dict[str, Any]:
    if len(text) > MARKDOWN_LIMIT:
        return {"text": text}
    if feedback_id is None:
        return {"markdown_text": text}
    # `markdown_text` excludes blocks: the same Markdown as a block, then the feedback buttons under it.
    return {"text": text, "blocks": [{"type": "markdown", "text": text}, feedback_block(feedback_id)]}


class WebApiGateway(AgentFeatures, SearchContext):
    """SlackGateway on the Web API; `streaming` False keeps answers off Slack's native streaming."""

    def __init__(self, bots: TeamBots | AsyncWebClient, *, streaming: bool = True) -> None:
        # A bare client is the single-workspace case: its one token for every team.
        self._bots = bots if isinstance(bots, TeamBots) else TeamBots(bots)
        self._streaming = streaming
        self._agent_features = {}
        self._warned = set()
        self._search_refused = {}
        self._time_zones: dict[tuple[str, str], tuple[float, UserTimeZone]] = {}

    async def _call(
        self, team_id: str, method: str, make_call: Callable[[AsyncWebClient], Awaitable[AsyncSlackResponse]]
    ) -> dict[str, Any]:
        """Make a Web API call with the team's bot token; once more with a token looked up again if Slack refuses
        the one it was made with (revoked, or replaced by a reinstall)."""
        client = (await self._bots.bot(team_id)).client
        try:
            return await send(method, make_call(client))
        except SlackError as exc:
            if exc.code not in REFUSED_TOKEN or not self._bots.forget(team_id, client, exc.code):
                raise
            log.info("workspace %s: Slack refused its bot token (%s); looking it up again", team_id, exc.code)
        return await send(method, make_call((await self._bots.bot(team_id)).client))

    async def bot_user_id(self, team_id: str) -> str:
        """The bot's user id in the team."""
        return (await self._bots.identified_bot(team_id)).user_id or ""

    async def post_placeholder(self, thread: ThreadRef, text: str, task_id: str) -> str:
        """Post the message a task's answer will replace, tagged with the task id in its metadata."""
        return await self._post(thread, {"text": text, "metadata": task_metadata(task_id)})

    async def post_reply(self, thread: ThreadRef, text: str) -> str:
        """Post a reply in the thread."""
        return await self._post(thread, _message_body(text))

    async def post_reset_note(self, thread: ThreadRef, text: str, *, reset_at: float) -> str:
        """Post the reset note, its metadata saying when the reset was asked (later reads start after that)."""
        metadata = {"event_type": RESET_EVENT_TYPE, "event_payload": {"reset_at": reset_at}}
        return await self._post(thread, {**_message_body(text), "metadata": metadata})

    async def _post(self, thread: ThreadRef, body: dict[str, Any]) -> str:
        if thread.thread_ts:
            body["thread_ts"] = thread.thread_ts
        channel = thread.channel_id
        data = await self._call(
            thread.team_id, "chat.postMessage", lambda client: client.chat_postMessage(channel=channel, **body)
        )
        return str(data["ts"])

    async def update_message(self, thread: ThreadRef, ts: str, text: str, *, feedback: bool = False) -> None:
        """Replace a message's text (and end it with the feedback buttons if asked)."""
        body = _message_body(text, feedback_id=f"feedback-{ts}" if feedback else None)
        await self._call(
            thread.team_id, "chat.update", lambda client: client.chat_update(channel=thread.channel_id, ts=ts, **body)
        )

    async def delete_message(self, thread: ThreadRef, ts: str) -> None:
        """Delete a message the bot posted; one that is gone already is not an error."""
        team, channel = thread.team_id, thread.channel_id
        try:
            await self._call(team, "chat.delete", lambda client: client.chat_delete(channel=channel, ts=ts))
        except SlackError as exc:
            if exc.code == "cant_delete_message":  # a message Slack still streams: end the stream first
                with contextlib.suppress(SlackError):
                    await self._call(team, "chat.stopStream", lambda c: c.chat_stopStream(channel=channel, ts=ts))
                await self._call(team, "chat.delete", lambda client: client.chat_delete(channel=channel, ts=ts))
            elif exc.code != "message_not_found":
                raise

    async def recent_messages(self, thread: ThreadRef, *, limit: int, before_ts: str | None = None) -> ThreadTail:
        """The thread's newest `limit` messages before `before_ts`, reading only their pages (thread_pages)."""
        bot = await self._bots.identified_bot(thread.team_id)
        tail = await thread_pages.newest(partial(self._page, thread), thread.thread_ts, wanted=limit, before=before_ts)
        return ThreadTail([_thread_message(raw, bot) for raw in tail.messages], tail.older_than)

    async def is_thread(self, thread: ThreadRef) -> bool:
        """Whether the message at `thread.thread_ts` has replies or is one: one call for its first page of one."""
        page = await self._page(thread, limit=1)
        message = page.parent or {}
        is_reply = message.get("thread_ts") not in (None, message.get("ts"))
        return is_reply or bool(message.get("reply_count")) or bool(page.replies) or page.has_more

    async def post_part(self, thread: ThreadRef, text: str, task_id: str, part: int, *, feedback: bool = False) -> str:
        """Post a further part of a long answer, its metadata naming the task and the part."""
        body = _message_body(text, feedback_id=f"feedback-{task_id}-{part}" if feedback else None)
        return await self._post(thread, {**body, "metadata": task_metadata(task_id, part)})

    async def find_task_message(self, thread: ThreadRef, task_id: str, *, after_ts: str, part: int = 0) -> str | None:
        """The bot's message whose metadata names this task and part, posted after `after_ts`: searched in the
        thread's messages after that ts (a few pages at most), or in the DM's latest messages."""
        bot = await self._bots.identified_bot(thread.team_id)

        def is_it(raw: dict[str, Any]) -> bool:
            metadata = raw.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            return (
                _thread_message(raw, bot).from_this_bot
                and metadata.get("event_type") == TASK_EVENT_TYPE
                and payload.get("task_id") == task_id
                and int(payload.get("part") or 0) == part
            )

        if thread.thread_ts:
            fetch = partial(self._page, thread)
            found = await thread_pages.after(fetch, oldest=after_ts, match=is_it, max_pages=MAX_FIND_PAGES)
            return None if found is None else str(found["ts"])
        data = await self._call(
            thread.team_id,
            "conversations.history",
            lambda client: client.conversations_history(
                channel=thread.channel_id, oldest=after_ts, limit=100, include_all_metadata=True
            ),
        )
        candidates = data.get("messages", [])
        return next((str(raw["ts"]) for raw in candidates if is_it(raw)), None)

    async def _page(self, thread: ThreadRef, **arguments: Any) -> Page:
        """One page of conversations.replies (with every app's metadata: reset notes and task tags are read)."""
        options = {name: value for name, value in arguments.items() if value is not None}
        data = await self._call(
            thread.team_id,
            "conversations.replies",
            lambda client: client.conversations_replies(
                channel=thread.channel_id, ts=thread.thread_ts, include_all_metadata=True, **options
            ),
        )
        messages = [raw for raw in data.get("messages", []) if isinstance(raw, dict)]
        # Slack puts the thread's parent on top of every page, whatever the time window.
        parent = next((raw for raw in messages if str(raw.get("ts")) == thread.thread_ts), None)
        replies = [raw for raw in messages if str(raw.get("ts")) != thread.thread_ts]
        cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
        return Page(parent, replies, bool(data.get("has_more")) or bool(cursor), cursor)

    async def download(self, team_id: str, url: str, max_bytes: int) -> tuple[bytes, str]:
        """Download a file shared in the team with its bot token (files:read), only from Slack's file host. Slack
        answers a request it does not accept with a login page, not an error: an HTML answer for a file that is not
        HTML is refused here."""
        client = (await self._bots.bot(team_id)).client
        session = client.session
        owned = session is None
        if session is None:
            session = ClientSession()
        try:
            return await self._fetch_from_slack(client, session, url, max_bytes)
        except (ClientError, TimeoutError, ValueError) as exc:  # ValueError: aiohttp refusing the request it was given
            raise SlackError(f"file download failed: {type(exc).__name__}") from None
        finally:
            if owned:
                await session.close()

    async def _fetch_from_slack(
        self, client: AsyncWebClient, session: ClientSession, url: str, max_bytes: int
    ) -> tuple[bytes, str]:
        """GET the file, following redirects by hand: aiohttp would follow one to any host (dropping the header only
        when the origin changes); here every hop must be a Slack file URL before it is requested at all."""
        headers = {"Authorization": f"Bearer {client.token}"}
        for _ in range(MAX_FILE_REDIRECTS + 1):
            if not is_slack_file_url(url, client.base_url):
                raise SlackError("file download refused: not a Slack file URL")  # the token never leaves Slack
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in REDIRECT_STATUSES and location:
                    url = urljoin(str(response.url), location)
                    continue
                return await _read_file(response, url, max_bytes)
        raise SlackError("file download refused: too many redirects")

    async def _user_info(self, team_id: str, user_id: str, wanted: str) -> dict[str, Any] | None:
        """users.info's user object; None (logged at INFO, naming what was `wanted` of it) if Slack will not say."""
        try:
            data = await self._call(team_id, "users.info", lambda client: client.users_info(user=user_id))
        except SlackError as exc:
            log.info("no %s for %s: %s", wanted, user_id, exc)
            return None
        user = data.get("user")
        return user if isinstance(user, dict) else {}

    async def display_name(self, team_id: str, user_id: str) -> str | None:
        """The user's display name; None if Slack will not say (a name is nice to have, not needed)."""
        user = await self._user_info(team_id, user_id, "display name")
        if user is None:
            return None
        profile = user.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        return str(name) if name else None

    async def time_zone(self, team_id: str, user_id: str) -> UserTimeZone | None:
        """The person's time zone from users.info (`tz`, `tz_label`, `tz_offset`), kept TIME_ZONE_SECONDS; None if
        Slack will not say (not kept: asked again next time)."""
        key, now = (team_id, user_id), time.monotonic()
        kept = self._time_zones.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        user = await self._user_info(team_id, user_id, "time zone")
        if user is None:
            return None
        name, offset = user.get("tz"), user.get("tz_offset")
        if not isinstance(name, str) or not name or not isinstance(offset, int):
            return None
        zone = UserTimeZone(name, str(user.get("tz_label") or name), offset)
        self._time_zones.pop(key, None)
        if len(self._time_zones) >= TIME_ZONES_KEPT:
            self._time_zones.pop(next(iter(self._time_zones)))
        self._time_zones[key] = (now + TIME_ZONE_SECONDS, zone)
        return zone

    async def is_workspace_admin(self, team_id: str, user_id: str) -> bool | None:
        """Whether users.info says the person is an admin, owner or primary owner of the workspace; None if Slack
        will not say (the caller then treats the person as no admin, and asks again next time)."""
        user = await self._user_info(team_id, user_id, "role")
        if user is None:
            return None
        if user.get("team_id") != team_id:
            # Someone of another workspace (a Slack Connect channel's guest org, another workspace of a Grid org):
            # their flags speak of their own workspace, not this one.
            return False
        return any(user.get(flag) is True for flag in ("is_admin", "is_owner", "is_primary_owner"))


def is_slack_file_url(url: str, api_url: str) -> bool:
    """Whether the bot token may go with a request for `url`: https on files.slack.com, or the origin (scheme, host
    and port) of the Web API the bot uses, where a local Slack serves files in the playground and the tests; never
    with a user name or password in the URL."""
    origin = _origin(url)
    return origin is not None and origin in (SLACK_FILES_ORIGIN, _origin(api_url))


def _origin(url: str) -> tuple[str, str, int] | None:
    # Parsed by yarl, as aiohttp parses it to connect: a URL two parsers read differently (urllib takes
    # "https://evil.com\\@files.slack.com/" for files.slack.com) is judged by where the request would go.
    try:
        parts = URL(url)
    except ValueError:  # a port out of range, a backslash in the host...
        return None
    if not parts.absolute or not parts.host or parts.port is None:
        return None
    if parts.raw_user is not None or parts.raw_password is not None:
        return None  # aiohttp would send them as Basic auth, and refuses them beside the token's header
    return parts.scheme.lower(), parts.host.lower(), parts.port


async def _read_file(response: ClientResponse, url: str, max_bytes: int) -> tuple[bytes, str]:
    """The body (at most max_bytes + 1 bytes: enough to tell it was longer) and its content type."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    login_page = kind == "text/html" and not url.lower().endswith((".html", ".htm"))
    if response.status != 200 or login_page:
        raise SlackError(f"file download refused (HTTP {response.status}, {kind or 'no type'})")
    data = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > max_bytes:  # enough to know it is too long: stop reading
            break
    del data[max_bytes + 1 :]  # in place: no second copy of a file that may be megabytes
    return bytes(data), kind


def _thread_message(raw: dict[str, Any], bot: TeamBot) -> ThreadMessage:
    bot_id = raw.get("bot_id")
    mine = raw.get("user") == bot.user_id or (bot_id is not None and bot_id == bot.bot_id)
    return ThreadMessage(
        ts=str(raw["ts"]),
        text=str(raw.get("text", "")),
        user_id=raw.get("user"),
        from_this_bot=mine,
        from_other_bot=bot_id is not None and not mine,
        reset_at=_reset_time(raw) if mine else None,
    )


def _reset_time(raw: dict[str, Any]) -> float | None:
    """When the reset a reset note reports was asked (its own ts if the metadata lacks it)."""
    metadata = raw.get("metadata") or {}
    if metadata.get("event_type") != RESET_EVENT_TYPE:
        return None
    try:
        return float((metadata.get("event_payload") or {}).get("reset_at") or raw["ts"])
    except (TypeError, ValueError):
        return float(raw["ts"])
