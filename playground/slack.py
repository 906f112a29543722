"""In-process fake of the Slack Web API (and Socket Mode), speaking the wire format the real slack_sdk uses."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from .payloads import (
    DEFAULT_APP_ID,
    app_mention_event,
    block_actions_payload,
    message_event,
    new_ts,
    observe_ts,
    slash_command_fields,
)
from .server import LocalServer
from .slack_agents import SlackAgentsMixin
from .slack_files import SlackDownload, SlackFilesMixin
from .slack_grid import SlackGridMixin
from .slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from .slack_search import SearchRateLimited, SlackSearchMixin
from .slack_socket import SocketModeMixin
from .slack_store import SlackApiFailure, maybe_json
from .slack_views import SlackViewsMixin
from .slack_workspaces import ROTATING_TOKEN_LIFETIME, ActiveWorkspaceMixin
from .waiting import wait_until

Args = dict[str, Any]
# Echoed in the x-oauth-scopes response header; slack_bolt copies it into its AuthorizeResult.
BOT_SCOPES = (
    "app_mentions:read,channels:history,chat:write,groups:history,im:history,reactions:write,search:read.public,"
    "users:read"
)
_STRUCTURED = ("blocks", "attachments", "metadata")
# Arguments that arrive as JSON strings in form or query encodings.
_JSON_ARGS = (*_STRUCTURED, "chunks", "prompts", "view")
# A response_url takes five posts within thirty minutes.
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0


@dataclass
class SlackCall:
    """One Web API request as the fake received it."""

    method: str
    args: Args
    headers: dict[str, str]  # lower-cased names
    http_method: str = "POST"
    body_format: str = "query"  # "json", "form" or "query": how the client encoded the arguments
    token: str | None = None
    # The workspace the accepted call acted in: its token's, or the one an org-wide token's call named (the org's
    # id when it named none).
    team_id: str | None = None
    received: float = field(default_factory=time.monotonic)  # when it arrived, for benchmarks that time the bot


@dataclass
class _ResponseGrant:
    uses_left: int
    expires_at: float  # time.monotonic()


@dataclass
class _Failure:
    error: str | None
    status: int | None
    retry_after: int | None
    times: int


def _apply_markdown_text(args: Args) -> Args:
    """Slack turns `markdown_text` into the message's text plus one `markdown` block; it excludes text/blocks."""
    markdown = args.get("markdown_text")
    if not markdown:
        return args
    if args.get("text") or args.get("blocks"):
        raise SlackApiFailure("markdown_text_conflict")
    return {**args, "text": markdown, "blocks": [{"type": "markdown", "text": markdown}]}


class FakeSlack(
    ActiveWorkspaceMixin,
    SlackGridMixin,
    SlackAgentsMixin,
    SlackSearchMixin,
    SlackViewsMixin,
    SocketModeMixin,
    SlackFilesMixin,
    LocalServer,
):
    """Fake Slack: Web API at POST/GET /api/{method}, Socket Mode websocket at /socket-mode, files, the agent
    features (sessions, streaming, Stop, suggested prompts, feedback buttons), and the OAuth install into more
    workspaces than the default one, which the constructor's ids and bot token describe, or org-wide into an
    Enterprise Grid org (`org_deploy_enabled`)."""

    def __init__(
        self,
        *,
        team_id: str = "T0TEAM",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        app_id: str = DEFAULT_APP_ID,
        replies_parent_on_every_page: bool = True,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token_rotation: bool = False,
        token_lifetime: float = ROTATING_TOKEN_LIFETIME,
        org_deploy_enabled: bool = False,
    ) -> None:
        self.app_id = app_id
        self.bot_token, self.app_token = bot_token, app_token
        self._init_active_workspace(team_id)
        self._init_oauth(
            client_id=client_id,
            client_secret=client_secret,
            token_rotation=token_rotation,
            token_lifetime=token_lifetime,
        )
        self._init_grid(org_deploy_enabled=org_deploy_enabled)
        # The default workspace comes installed, its bot token never expiring, as before workspaces existed.
        self.add_workspace(team_id, team_name="Fake Team", bot_user_id=bot_user_id, bot_id=bot_id).installed = True
        self.issue_token(bot_token, "bot", team_id, bot_user_id, BOT_SCOPES)
        self.issue_token(app_token, "app", team_id, bot_user_id, "connections:write")
        # Whether continuation pages of conversations.replies repeat the parent; True forces callers to dedupe.
        self.replies_parent_on_every_page = replies_parent_on_every_page
        self.calls: list[SlackCall] = []
        self.updates: list[Args] = []
        self.ephemerals: list[Args] = []
        self.deletes: list[Args] = []
        # Accepted response_url posts: {"url", "kind" ("commands"/"actions"), "body"} in arrival order.
        self.responses: list[Args] = []
        self._response_grants: dict[str, _ResponseGrant] = {}
        self._users: dict[str, Args] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._init_socket_mode()
        self._init_files()
        self._init_agents()
        self._init_search()
        self._init_views()
        self.add_user(bot_user_id, "claude", real_name="Claude", is_bot=True)
        self._handlers: dict[str, Callable[[Args], Args]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.replies": self._conversations_replies,
            "conversations.history": lambda a: self.store.history(a),
            "reactions.add": lambda a: self._reaction(a, add=True),
            "reactions.remove": lambda a: self._reaction(a, add=False),
            "users.info": self._users_info,
            "apps.connections.open": lambda a: {"url": self._issue_socket_url()},
            **self._agent_handlers(),
            **self._search_handlers(),
            **self._view_handlers(),
        }

    # ------------------------------------------------------------------ lifecycle

    def add_routes(self, app: web.Application) -> None:
        """The Web API at /api/{method}, minted response_urls, the Socket Mode websocket and files' private URLs."""
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/{kind:commands|actions}/{team}/{id}/{secret}", self._handle_response_url)
        app.router.add_get("/socket-mode", self._handle_socket)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        self._add_file_routes(app)

    async def before_stop(self) -> None:
        """Close websockets first; close SDK clients before this or they will try to reconnect."""
        await self.close_sockets()

    @property
    def url(self) -> str:
        """Root URL of the fake, e.g. "http://127.0.0.1:PORT/"."""
        return f"http://127.0.0.1:{self._port}/"

    @property
    def authorize_url(self) -> str:
        """For Bolt's AsyncOAuthSettings(authorization_url=...): the "Add to Slack" page of this fake."""
        return self.url + "oauth/v2/authorize"

    @property
    def api_url(self) -> str:
        """Base URL for AsyncWebClient(base_url=...); the SDK appends the method name."""
        return self.url + "api/"

    # ------------------------------------------------------------------ seeding, inspection, scripting

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        display_name: str | None = None,
        is_bot: bool = False,
        is_admin: bool = False,
        is_owner: bool = False,
        is_primary_owner: bool = False,
        team_id: str | None = None,
        tz: str = "Europe/London",
    ) -> None:
        """Register a user for users.info; as in Slack's user object, the workspace roles are three flags (is_admin,
        is_owner, is_primary_owner) and guests' two more (never set here). `team_id`: their own workspace, when it
        is another (a Slack Connect channel's member from another organisation), else the current one. `tz`: their
        IANA time zone; users.info gives its label and its offset from UTC now, as Slack does."""
        real, display = real_name or name, display_name or ""
        self._users[user_id] = {
            "id": user_id,
            "team_id": team_id or self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real,
            "tz": tz,
            "is_bot": is_bot,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": is_primary_owner,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_app_user": False,
            "profile": {
                "real_name": real,
                "display_name": display,
                "real_name_normalized": real,
                "display_name_normalized": display,
                "team": self.team_id,
            },
        }

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0HUMAN",
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
    ) -> str:
        """Seed a message (e.g. existing thread history) and return its ts."""
        if ts is None:
            ts = new_ts()
        else:
            observe_ts(ts)
        msg: Args = {"type": "message", "ts": ts, "text": text, "user": user, "team": self.team_id}
        if bot_id is not None:
            msg["bot_id"] = bot_id
        else:
            msg["client_msg_id"] = str(uuid.uuid4())
        if subtype is not None:
            msg["subtype"] = subtype
        if thread_ts is not None and thread_ts != ts:
            msg["thread_ts"] = thread_ts
        self.store.insert(channel, msg)
        return ts

    def post_user_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0HUMAN",
        thread_ts: str | None = None,
        mention: bool = False,
        channel_type: str = "channel",
        files: list[Args] | None = None,
    ) -> Args:
        """Store a human message and return the event_callback envelope Slack would deliver for it.

        Use this instead of a bare payload builder when the bot will read the thread back: real Slack
        always has the message an event announces, so conversations.replies must find it too.
        `files` (from `add_file`) are shared by the message: it is stored with subtype "file_share" and the
        files, and the event carries them (app_mention events too, though without the subtype).
        """
        shared = self._shared_files(files, channel) if files else None
        subtype = "file_share" if shared else None
        ts = self.add_message(channel, text, user=user, thread_ts=thread_ts, subtype=subtype)
        if mention:
            event = app_mention_event(
                text, user=user, channel=channel, ts=ts, thread_ts=thread_ts, team=self.team_id, files=shared
            )
        else:
            parent = self.store.get(channel, thread_ts) if thread_ts else None
            event = message_event(
                text,
                user=user,
                channel=channel,
                ts=ts,
                thread_ts=thread_ts,
                channel_type=channel_type,
                team=self.team_id,
                parent_user_id=parent.get("user") if parent else None,
                files=shared,
            )
        # A person's message lets the app search as them for a while (assistant.search.context).
        event["action_token"] = self.issue_action_token(user)
        # Keep the stored copy identical to what the event carried.
        stored = self.store.find(channel, ts)
        stored.update(client_msg_id=event["client_msg_id"], blocks=event["blocks"])
        if shared:
            stored.update(files=copy.deepcopy(shared), upload=False, display_as_bot=False)
        return self.workspace_envelope(event)

    def post_other_app_mention(
        self,
        channel: str,
        text: str,
        *,
        bot_id: str,
        user: str,
        app_id: str = "A0OTHERAPP",
        thread_ts: str | None = None,
    ) -> Args:
        """Store a message another app posted with its bot token (chat.postMessage) that mentions this bot, and return
        the app_mention envelope Slack delivers for it: the other bot's user, bot_id, app_id and bot_profile, and no
        client_msg_id (only people's clients send one)."""
        ts = self.add_message(channel, text, user=user, thread_ts=thread_ts, bot_id=bot_id)
        event = app_mention_event(text, user=user, channel=channel, ts=ts, thread_ts=thread_ts, team=self.team_id)
        del event["client_msg_id"]
        profile = {"id": bot_id, "app_id": app_id, "name": "other bot", "team_id": self.team_id, "deleted": False}
        event.update(bot_id=bot_id, app_id=app_id, bot_profile=profile)
        stored = self.store.find(channel, ts)
        stored.update(app_id=app_id, bot_profile=copy.deepcopy(profile), blocks=event["blocks"])
        return self.workspace_envelope(event)

    def response_url(
        self, kind: str = "commands", *, uses: int = RESPONSE_URL_USES, ttl: float = RESPONSE_URL_TTL
    ) -> str:
        """Mint a response_url on this fake ("commands" for slash commands, "actions" for interactivity).

        Like Slack's, it accepts `uses` posts within `ttl` seconds and then answers 404 expired_url.
        """
        if kind not in ("commands", "actions"):
            raise ValueError(f"kind must be 'commands' or 'actions', not {kind!r}")
        install = self.install_fields()
        # An org-wide install's response_urls name the org, not the workspace.
        owner = install["enterprise_id"] if install["is_enterprise_install"] else self.team_id
        path = f"{kind}/{owner}/{uuid.uuid4().int % 10**13}/{uuid.uuid4().hex[:24]}"
        self._response_grants[path] = _ResponseGrant(uses, time.monotonic() + ttl)
        return self.url + path

    def slash_command(self, command: str, text: str, *, channel: str, user: str = "U0HUMAN") -> dict[str, str]:
        """The fields Slack sends when `user` runs `command` in `channel` of the active workspace, with its org and
        install, and a response_url minted on this fake."""
        return slash_command_fields(
            command,
            text,
            team_id=self.team_id,
            channel_id=channel,
            user_id=user,
            user_name=self._users.get(user, {}).get("name", "someone"),
            channel_name="directmessage" if channel.startswith("D") else "general",
            api_app_id=self.app_id,
            response_url=self.response_url("commands"),
            trigger_id=self.issue_trigger_id(user),
            **self.install_fields(),
        )

    def click_ephemeral_button(self, action_id: str, value: str, *, channel: str, user: str) -> tuple[Args, str]:
        """The block_actions payload of `user` clicking a button of an ephemeral message (one Slack keeps no copy
        of, like a slash command's answer), and the response_url its answer goes to."""
        url = self.response_url("actions")
        payload = block_actions_payload(
            action_id,
            value,
            team_id=self.team_id,
            channel_id=channel,
            user_id=user,
            response_url=url,
            is_ephemeral=True,
            **self.install_fields(),
        )
        return payload, url

    async def response_at(
        self, url: str, *, unless: Callable[[Args], bool] = lambda body: False, timeout: float = 10.0
    ) -> Args:
        """The latest body posted to `url`, waiting until there is one for which `unless` is false."""

        def latest() -> Args | None:
            bodies = [response["body"] for response in self.responses if response["url"] == url]
            return bodies[-1] if bodies and not unless(bodies[-1]) else None

        found: Args = await wait_until(latest, timeout=timeout)  # type: ignore[arg-type]  # falsy None: keep waiting
        return found

    def click_button(self, channel: str, ts: str, action_id: str, *, user: str = "U0HUMAN") -> Args:
        """Return the block_actions payload for `user` clicking button `action_id` of a message the bot posted.

        The button must be in the stored (or ephemeral) message, so a test cannot click what the bot never showed;
        the payload's response_url is minted on this fake.
        """
        msg = self.store.get(channel, ts)
        ephemeral = None
        if msg is None:
            ephemeral = next((e for e in self.ephemerals if e["channel"] == channel and e["message_ts"] == ts), None)
        source = msg if msg is not None else ephemeral
        if source is None:
            raise LookupError(f"no message {ts} in {channel}")
        block, button = _find_button(source.get("blocks") or [], action_id)
        # Slack gives every block a block_id when the message is posted; the fake does it on first click.
        block_id = block.setdefault("block_id", uuid.uuid4().hex[:5])
        return block_actions_payload(
            action_id,
            button.get("value"),
            team_id=self.team_id,
            channel_id=channel,
            user_id=user,
            response_url=self.response_url("actions"),
            message_ts=ts,
            message=self.store.view(channel, msg) if msg is not None else None,
            is_ephemeral=msg is None,
            thread_ts=ephemeral.get("thread_ts") if ephemeral is not None else None,
            block_id=block_id,
            text=button["text"]["text"],
            style=button.get("style"),
            user_name=self._users.get(user, {}).get("name", "someone"),
            channel_name="directmessage" if channel.startswith("D") else "general",
            api_app_id=self.app_id,
            **self.install_fields(),
        )

    def messages(self, channel: str) -> list[Args]:
        """All messages of a channel (top-level and replies) in ts order."""
        return self.store.views(channel, self.store.channels.get(channel, []))

    def thread(self, channel: str, thread_ts: str) -> list[Args]:
        """Parent message plus its replies in ts order."""
        return [m for m in self.messages(channel) if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def bot_replies(self, channel: str, thread_ts: str) -> list[Args]:
        """Messages the bot posted in the given thread (excluding the parent)."""
        return [m for m in self.thread(channel, thread_ts) if m.get("bot_id") == self.bot_id and m["ts"] != thread_ts]

    def calls_to(self, method: str) -> list[Args]:
        """Arguments of every recorded call to `method`, in order."""
        return [c.args for c in self.calls if c.method == method]

    def calls_from(self, team_id: str) -> list[SlackCall]:
        """Every recorded call the fake accepted that acted in workspace `team_id` (with its token, or an org-wide
        token naming it), or with org `team_id`'s org-wide token naming no workspace, in order."""
        return [c for c in self.calls if c.team_id == team_id]

    def fail_next(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls to `method` fail: ok:false `error` on HTTP 200, or HTTP `status`."""
        if status is None and retry_after is not None:
            status = 429
        if status is None and error is None:
            error = "internal_error"
        self._failures.setdefault(method, []).append(_Failure(error, status, retry_after, times))

    def delay(self, method: str, seconds: float) -> None:
        """Add artificial latency to every call of `method` (0 removes it)."""
        self._delays[method] = seconds

    # ------------------------------------------------------------------ HTTP plumbing

    @staticmethod
    async def _parse(request: web.Request) -> tuple[Args, str]:
        # Query string first, then the body: slack_sdk sends chat.* as JSON, most reads as query params.
        args: Args = dict(request.query.items())
        body_format = "query"
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                body = await request.json()
                args.update(body if isinstance(body, dict) else {})
                body_format = "json"
            elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                args.update({k: v for k, v in form.items() if isinstance(v, str)})
                body_format = "form"
        return args, body_format

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw, body_format = await self._parse(request)
        args = {k: maybe_json(v) if k in _JSON_ARGS else v for k, v in raw.items()}
        # A token may arrive as "Authorization: Bearer ..." or as a `token` argument.
        auth = request.headers.get("Authorization", "")
        arg_token = args.pop("token", None)
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else arg_token
        headers_in = {k.lower(): v for k, v in request.headers.items()}  # names are case-insensitive on the wire
        call = SlackCall(method, args, headers_in, request.method, body_format, token)
        self.calls.append(call)
        headers = {"x-oauth-scopes": BOT_SCOPES, "x-slack-req-id": uuid.uuid4().hex}
        if self._delays.get(method):
            await asyncio.sleep(self._delays[method])
        failure = self._take_failure(method)
        if failure is not None and failure.status is not None:
            # Rate limits are HTTP 429 + Retry-After (seconds); slack_sdk's retry handler sleeps on that header.
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            error = failure.error or ("ratelimited" if failure.status == 429 else "fatal_error")
            return web.json_response({"ok": False, "error": error}, status=failure.status, headers=headers)
        try:
            if failure is not None:
                raise SlackApiFailure(failure.error or "internal_error")
            if method == "oauth.v2.access":
                # The one method authenticated by the app's client id and secret rather than a token.
                body: Args = {"ok": True, **self.oauth_v2_access(args, auth)}
            else:
                body = {"ok": True, **self._handle_with_token(method, token, args, call, headers)}
        except SearchRateLimited as exc:
            headers["Retry-After"] = str(exc.retry_after)
            return web.json_response({"ok": False, "error": exc.error}, status=429, headers=headers)
        except SlackApiFailure as exc:
            body = {"ok": False, "error": exc.error}
        # Slack reports API errors with HTTP 200 and ok:false; only rate limits/outages use other statuses.
        return web.json_response(body, headers=headers)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        path = request.path.lstrip("/")
        grant = self._response_grants.get(path)
        if grant is None or grant.uses_left <= 0 or time.monotonic() >= grant.expires_at:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        if not body.get("delete_original") and not any(body.get(k) for k in ("text", "blocks", "attachments")):
            return web.json_response({"ok": False, "error": "no_text"}, status=400)
        grant.uses_left -= 1
        self.responses.append({"url": self.url + path, "kind": request.match_info["kind"], "body": body})
        return web.json_response({"ok": True})

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    def _handle_with_token(
        self, method: str, token: str | None, args: Args, call: SlackCall, headers: dict[str, str]
    ) -> Args:
        grant = self.authenticate(method, token)
        headers["x-oauth-scopes"] = grant.scopes
        handler = self._handlers.get(method)
        if handler is None:
            raise SlackApiFailure("unknown_method")
        team = self.call_team(grant, args)
        call.team_id = team or grant.team_id
        self._caller, self._call_team = grant, team
        try:
            return handler(args)
        finally:
            self._caller = self._call_team = None

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, args: Args) -> Args:
        caller = self._caller
        if caller is None:
            raise SlackApiFailure("not_authed")
        if caller.is_enterprise_install:
            return self.org_auth_test(caller)
        workspace = self.workspaces[caller.team_id]
        subdomain = "fake" if workspace.team_id == self.team_id else f"{workspace.team_id.lower()}.fake"
        answer: Args = {
            "url": f"https://{subdomain}.slack.com/",
            "team": workspace.team_name,
            "user": "claude" if caller.kind == "bot" else caller.user_id,
            "team_id": workspace.team_id,
            "user_id": caller.user_id,
            "is_enterprise_install": False,
        }
        if workspace.enterprise_id is not None:
            answer["enterprise_id"] = workspace.enterprise_id
        if caller.kind == "bot":
            answer["bot_id"] = workspace.bot_id
        return answer

    def _chat_post_message(self, args: Args) -> Args:
        args = _apply_markdown_text(args)
        channel = str(args.get("channel") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            raise SlackApiFailure("no_text")
        extra = {k: args[k] for k in _STRUCTURED if args.get(k) is not None}
        msg = self._bot_message(channel, str(args.get("text", "")), args.get("thread_ts") or None, extra)
        return {"channel": channel, "ts": msg["ts"], "message": self.store.view(channel, msg)}

    def _bot_message(self, channel: str, text: str, thread_ts: str | None, extra: Args) -> Args:
        """Store a message from the bot (with `extra` fields: blocks, metadata...) and return the stored copy."""
        msg: Args = {
            "type": "message",
            "ts": new_ts(),
            "text": text,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": "claude",
                "team_id": self.team_id,
                "deleted": False,
            },
            **extra,
        }
        if thread_ts:
            msg["thread_ts"] = str(thread_ts)
            parent = self.store.get(channel, msg["thread_ts"])
            if parent is not None and parent.get("user"):
                msg["parent_user_id"] = parent["user"]
        self.store.insert(channel, msg)
        return msg

    def _chat_update(self, args: Args) -> Args:
        args = _apply_markdown_text(args)
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        msg = self.store.find(channel, ts)
        if msg.get("bot_id") != self.bot_id:
            raise SlackApiFailure("cant_update_message")
        if self.is_streaming(channel, ts):
            raise SlackApiFailure("streaming_state_conflict")  # chat.update works once the stream has ended
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            raise SlackApiFailure("no_text")
        self.updates.append({"previous_text": msg.get("text"), **copy.deepcopy(args)})
        if "text" in args:
            msg["text"] = args["text"]
        # Omitted blocks/metadata keep their previous value, as documented for chat.update.
        msg.update({k: args[k] for k in _STRUCTURED if args.get(k) is not None})
        msg["edited"] = {"user": self.bot_user_id, "ts": new_ts()}
        return {"channel": channel, "ts": ts, "text": msg["text"], "message": self.store.view(channel, msg)}

    def _chat_delete(self, args: Args) -> Args:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        msg = self.store.find(channel, ts)
        # A bot token may delete only what the bot posted.
        if msg.get("bot_id") != self.bot_id or self.is_streaming(channel, ts):
            raise SlackApiFailure("cant_delete_message")
        self.deletes.append({"channel": channel, "ts": ts, "text": msg.get("text")})
        self.store.delete(channel, ts)
        return {"channel": channel, "ts": ts}

    def _chat_post_ephemeral(self, args: Args) -> Args:
        if not args.get("channel"):
            raise SlackApiFailure("channel_not_found")
        if not args.get("user"):
            raise SlackApiFailure("user_not_in_channel")
        if not any(args.get(k) for k in ("text", "blocks", "attachments")):
            raise SlackApiFailure("no_text")
        # Ephemeral messages are never stored in history; only their message_ts comes back. The record keeps the
        # workspace too: two may have the same channel ids.
        message_ts = new_ts()
        self.ephemerals.append({**copy.deepcopy(args), "message_ts": message_ts, "team": self.team_id})
        return {"message_ts": message_ts}

    def _chat_get_permalink(self, args: Args) -> Args:
        channel, ts = str(args.get("channel", "")), str(args.get("message_ts", ""))
        msg = self.store.find(channel, ts)
        link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if msg.get("thread_ts") and msg["thread_ts"] != ts:
            link += f"?thread_ts={msg['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _conversations_replies(self, args: Args) -> Args:
        return self.store.replies(args, parent_on_every_page=self.replies_parent_on_every_page)

    def _reaction(self, args: Args, *, add: bool) -> Args:
        name = str(args.get("name", "")).strip(":")
        if not name:
            raise SlackApiFailure("invalid_name")
        channel, ts = str(args.get("channel", "")), str(args.get("timestamp", ""))
        if add:
            self.store.add_reaction(channel, ts, name, self.bot_user_id)
        else:
            self.store.remove_reaction(channel, ts, name, self.bot_user_id)
        return {}

    def _users_info(self, args: Args) -> Args:
        user = self._users.get(str(args.get("user", "")))
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"user": {**copy.deepcopy(user), **_zone_now(str(user["tz"]))}}


def _zone_now(name: str) -> Args:
    """A user object's tz_label and tz_offset (seconds east of UTC) for zone `name` at this moment: Slack gives the
    offset in force now (so it changes with daylight saving time). The label is the zone's abbreviation here."""
    now = datetime.now(ZoneInfo(name))
    offset = now.utcoffset()
    return {"tz_label": now.tzname() or name, "tz_offset": int(offset.total_seconds()) if offset else 0}


def _find_button(blocks: list[Args], action_id: str) -> tuple[Args, Args]:
    """The block holding the button `action_id` (in an actions block or as a section accessory) and the button."""
    for block in blocks:
        for element in [*block.get("elements", []), block.get("accessory")]:
            if isinstance(element, dict) and element.get("type") == "button" and element.get("action_id") == action_id:
                return block, element
    raise LookupError(f"no button {action_id!r} in the message's blocks")


__all__ = ["FakeSlack", "SlackApiFailure", "SlackCall", "SlackDownload"]
