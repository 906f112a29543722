"""The playground: the Slack emulator plus a web page where a person plays the part of a Slack workspace.

What a person does on the page becomes what Slack would send the bot (message and app_mention events,
slash commands, button clicks, all signed and delivered by SlackDelivery); what the bot sends back lands in
the emulator's Web API, which the page shows as it changes (long polling on /playground/state).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import logging
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from .channel_view import channel_view
from .delivery import Delivered, SlackDelivery
from .page_input import CHANNELS, DM_CHANNEL, ME, PageInputError, bad, channel_of, json_object, text_of
from .payloads import event_envelope, message_event, new_ts, slash_command_fields
from .playground_agents import AgentPage
from .playground_schedules import SchedulePage
from .playground_views import ModalPage
from .playground_workspaces import WorkspacePage
from .slack import FakeSlack

log = logging.getLogger(__name__)

Args = dict[str, Any]
LONG_POLL_SECONDS = 15.0
_COMMAND = re.compile(r"^(/\w+)(?:\s+(.*))?$", re.DOTALL)
_MENTION = re.compile(r"@claude\b", re.IGNORECASE)  # what a person types; Slack sends <@BOT_USER_ID>


class BotControls(Protocol):
    """What the page may ask of the process that runs the bot."""

    @property
    def state(self) -> str:
        """ "starting", "running", "restarting" or "stopped"."""
        ...

    @property
    def restarts(self) -> int:
        """How many times the bot was restarted from the page."""
        ...

    async def restart(self) -> None:
        """Kill the bot process (SIGKILL, as a crash would) and start it again."""
        ...


@dataclass
class Ephemeral:
    """A message only the person sees: a slash command's answer, a button's, or chat.postEphemeral's."""

    id: int
    team: str
    channel: str
    text: str
    blocks: list[Args] = field(default_factory=list)
    ts: str = field(default_factory=new_ts)  # where it sits among the channel's messages

    def as_json(self) -> Args:
        return {"id": self.id, "channel": self.channel, "text": self.text, "blocks": self.blocks, "ts": self.ts}


class Playground(FakeSlack):
    """The emulator with the page's routes; `delivery`, `controls` and `workspace_page.installs` are set once the
    bot process exists."""

    def __init__(self, *, model: str, signing_secret: str) -> None:
        super().__init__(bot_token="xoxb-playground", app_token="xapp-playground")
        self.workspaces[self.team_id].team_name = "Workspace 1"
        self.model = model
        self.delivery: SlackDelivery | None = None
        self.controls: BotControls | None = None
        self.signing_secret = signing_secret
        # The person trying the bot made the workspace: its primary owner, so the bot's admin (a channel reset, limits).
        self.add_user(ME[0], ME[1], real_name=ME[2], is_primary_owner=True)
        self.feed: list[Ephemeral] = []
        self.notices: collections.deque[str] = collections.deque(maxlen=4)
        self._feed_by_url: dict[str, int] = {}
        self._next_id = 1
        self._version = 0
        self._changed = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.agent_page = AgentPage(self)
        self.modal_page = ModalPage(self)
        self.workspace_page = WorkspacePage(self)
        self.schedule_page = SchedulePage(self)

    # ------------------------------------------------------------------ routes

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_get("/", self._page)
        app.router.add_get("/playground/state", self._state)
        app.router.add_post("/playground/messages", self._post_message)
        app.router.add_post("/playground/commands", self._run_command)
        app.router.add_post("/playground/actions", self._click)
        app.router.add_post("/playground/restart", self._restart)
        self.agent_page.add_routes(app)
        self.modal_page.add_routes(app)
        self.workspace_page.add_routes(app)
        self.schedule_page.add_routes(app)

    async def before_stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.schedule_page.close()
        await super().before_stop()

    def changed(self) -> None:
        """Wake the pages waiting for news."""
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _page(self, request: web.Request) -> web.Response:
        page = resources.files(__package__).joinpath("static/playground.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _state(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "-1"))
        except ValueError:
            return bad("since must be a number")
        try:
            team = self.workspace_page.team_of(request.query)
        except PageInputError as exc:
            return bad(str(exc))
        if since == self._version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), LONG_POLL_SECONDS)
        snapshot = self.snapshot(team)
        snapshot["schedules"] = await self.schedule_page.view(team)  # in the bot's Redis: read here, not in snapshot()
        return web.json_response(snapshot)

    async def _post_message(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            team, channel, text = self.workspace_page.team_of(body), channel_of(body), text_of(body)
            with self.as_workspace(team):
                thread_ts = _optional_ts(body, "thread_ts", self, channel)
                envelopes = self.say(channel, text, thread_ts)
        except PageInputError as exc:
            return bad(str(exc))
        # Slack sends an app nothing from a workspace it is not installed in.
        for envelope in envelopes if self.workspace_page.is_installed(team) else []:
            self.in_background(self.deliver_event(envelope))
        self.changed()
        return web.json_response({"ok": True, "ts": envelopes[0]["event"]["ts"]})

    async def _run_command(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            team, channel = self.workspace_page.team_of(body), channel_of(body)
            match = _COMMAND.match(text_of(body).strip())
            if match is None:
                raise PageInputError("a slash command starts with / (try /agent status)")
        except PageInputError as exc:
            return bad(str(exc))
        command, text = match.group(1), (match.group(2) or "").strip()
        if command != "/agent" or not self.workspace_page.is_installed(team):
            # A workspace knows only the commands of the apps installed in it.
            self._add_ephemeral(team, channel, f"{command} is not a valid command in this workspace.")
            return web.json_response({"ok": True})
        with self.as_workspace(team):
            url = self.response_url("commands")
            fields = slash_command_fields(
                command,
                text,
                team_id=self.team_id,
                channel_id=channel,
                channel_name=CHANNELS.get(channel, "directmessage"),
                user_id=ME[0],
                user_name=ME[1],
                api_app_id=self.app_id,
                response_url=url,
                trigger_id=self.issue_trigger_id(ME[0]),  # so that the bot can open a modal (/agent config)
            )
        delivered = await self.require_delivery().form(fields)
        self._show_answer(team, channel, command, delivered, url)
        return web.json_response({"ok": True})

    async def _click(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            item = next((e for e in self.feed if e.id == body.get("ephemeral_id")), None)
            if item is None:
                raise PageInputError("that message is gone")
            action_id, value = str(body.get("action_id", "")), body.get("value")
            if not any(button.get("action_id") == action_id for button in _buttons(item.blocks)):
                raise PageInputError("that message has no such button")
        except PageInputError as exc:
            return bad(str(exc))
        with self.as_workspace(item.team):
            payload, url = self.click_ephemeral_button(action_id, str(value or ""), channel=item.channel, user=ME[0])
        self._feed_by_url[url] = item.id
        delivered = await self.require_delivery().interaction(payload)
        if not delivered.ok:
            self._add_ephemeral(
                item.team, item.channel, f"The app did not respond ({_why(delivered)}). Please try again."
            )
        return web.json_response({"ok": True})

    async def _restart(self, request: web.Request) -> web.Response:
        if self.controls is None:
            return bad("the bot is not running under the playground")
        self.in_background(self.controls.restart())
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ what the person does

    def say(self, channel: str, text: str, thread_ts: str | None) -> list[Args]:
        """Store the person's message in the workspace in play; the events Slack sends for it (message, and
        app_mention if it mentions the bot in a channel; in the DM every message is for the app and comes as
        message.im)."""
        slack_text = _MENTION.sub(f"<@{self.bot_user_id}>", html.escape(text, quote=False))
        if channel == DM_CHANNEL:
            return [self.post_user_message(channel, slack_text, user=ME[0], thread_ts=thread_ts, channel_type="im")]
        mentions = f"<@{self.bot_user_id}>" in slack_text
        mention_envelope = self.post_user_message(
            channel, slack_text, user=ME[0], thread_ts=thread_ts, mention=mentions
        )
        if not mentions:
            return [mention_envelope]
        # Slack also sends a `message` event for the very message an app_mention announces.
        stored = self.store.find(channel, mention_envelope["event"]["ts"])
        parent = self.store.get(channel, thread_ts) if thread_ts else None
        event = message_event(
            slack_text,
            user=ME[0],
            channel=channel,
            ts=stored["ts"],
            thread_ts=thread_ts,
            team=self.team_id,
            parent_user_id=parent.get("user") if parent else None,
        )
        event.update(client_msg_id=stored["client_msg_id"], blocks=stored["blocks"])
        event["action_token"] = mention_envelope["event"]["action_token"]  # one message, one permission to search
        message = event_envelope(event, team_id=self.team_id, api_app_id=self.app_id, bot_user_id=self.bot_user_id)
        return [message, mention_envelope]

    async def deliver_event(self, envelope: Args) -> None:
        """Deliver an Events API envelope to the bot; a refusal becomes a notice on the page."""
        delivered = await self.require_delivery().event(envelope)
        if not delivered.ok:
            self.notify(f"the bot did not acknowledge an event ({_why(delivered)}); Slack sends it again")

    def notify(self, notice: str) -> None:
        """Show the person a notice, with the time (the page keeps the latest few)."""
        self.notices.append(f"{time.strftime('%H:%M:%S')} {notice}")
        self.changed()

    def _show_answer(self, team: str, channel: str, command: str, delivered: Delivered, response_url: str) -> None:
        if not delivered.ok:
            # What Slack itself shows when an app does not answer a command in time.
            self._add_ephemeral(team, channel, f'{command} failed with the error "{_slack_error(delivered)}"')
            return
        answer = delivered.json()
        if isinstance(answer, dict) and (answer.get("text") or answer.get("blocks")):
            item = self._add_ephemeral(team, channel, str(answer.get("text") or ""), answer.get("blocks") or [])
            self._feed_by_url[response_url] = item.id

    def _add_ephemeral(self, team: str, channel: str, text: str, blocks: list[Args] | None = None) -> Ephemeral:
        item = Ephemeral(self._next_id, team, channel, text, list(blocks or []))
        self._next_id += 1
        self.feed.append(item)
        self.changed()
        return item

    def require_delivery(self) -> SlackDelivery:
        """The way to the bot (503 for the page while the bot is not connected)."""
        if self.delivery is None:
            raise web.HTTPServiceUnavailable(text="the bot is not connected yet")
        return self.delivery

    def in_background(self, work: Any) -> None:
        """Run `work` without making the page wait; it is cancelled when the playground stops."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ what the bot does

    async def _handle_api(self, request: web.Request) -> web.Response:
        response = await super()._handle_api(request)
        self.changed()
        return response

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        before = len(self.responses)
        response = await super()._handle_response_url(request)
        if len(self.responses) > before:
            self._apply_response(self.responses[-1])
        return response

    def _apply_response(self, response: Args) -> None:
        """A post to a response_url: a new ephemeral, or (replace_original / delete_original) a changed one."""
        url, body = response["url"], response["body"]
        origin = next((e for e in self.feed if e.id == self._feed_by_url.get(url)), None)
        if origin is not None and body.get("delete_original"):
            self.feed.remove(origin)
        elif origin is not None and body.get("replace_original"):
            origin.text, origin.blocks = str(body.get("text") or ""), list(body.get("blocks") or [])
        else:
            # A response_url names its workspace: /commands/TEAM/... (see FakeSlack.response_url).
            team = origin.team if origin is not None else url.removeprefix(self.url).split("/")[1]
            channel = origin.channel if origin is not None else next(iter(CHANNELS))
            text, blocks = str(body.get("text") or ""), body.get("blocks")
            self._feed_by_url[url] = self._add_ephemeral(team, channel, text, blocks).id
        self.changed()

    # ------------------------------------------------------------------ what the page shows

    def snapshot(self, team_id: str | None = None) -> Args:
        """Everything the page draws of a workspace (the first one by default), with the version it is at."""
        team = team_id or self.workspace_page.joined[0]
        with self.as_workspace(team):
            return self._workspace_snapshot(team)

    def _workspace_snapshot(self, team: str) -> Args:
        controls = self.controls
        posted = [
            Ephemeral(
                0, team, str(e["channel"]), str(e.get("text") or ""), list(e.get("blocks") or []), e["message_ts"]
            )
            for e in self.ephemerals
            if e.get("user") == ME[0] and e.get("team") == team
        ]
        return {
            "version": self._version,
            **self.workspace_page.view(team),
            "me": {"id": ME[0], "name": ME[1]},
            "bot": {
                "id": self.bot_user_id,
                "name": "claude",
                "state": controls.state if controls else "stopped",
                "restarts": controls.restarts if controls else 0,
                "model": self.model,
            },
            "users": {user_id: user["name"] for user_id, user in self._users.items()},
            "channels": [
                *(
                    {"id": channel, "name": name, "kind": "channel", "messages": self._channel_view(channel)}
                    for channel, name in CHANNELS.items()
                ),
                {
                    "id": DM_CHANNEL,
                    "name": "claude",
                    "kind": "im",
                    "messages": self._channel_view(DM_CHANNEL),
                    "prompts": self.agent_page.prompts_view(DM_CHANNEL),
                },
            ],
            "ephemerals": [item.as_json() for item in [*self.feed, *posted] if item.team == team],
            "notices": list(self.notices),
            "modal": self.modal_page.view(team),
        }

    def _channel_view(self, channel: str) -> list[Args]:
        return channel_view(self.messages(channel), lambda message: self.agent_page.message_fields(channel, message))


def _buttons(blocks: list[Args]) -> list[Args]:
    return [
        element
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]


def _optional_ts(body: Args, name: str, slack: FakeSlack, channel: str) -> str | None:
    ts = body.get(name)
    if ts in (None, ""):
        return None
    if not isinstance(ts, str) or slack.store.get(channel, ts) is None:
        raise PageInputError(f"no message {ts!r} in that channel to reply to")
    return ts


def _why(delivered: Delivered) -> str:
    return delivered.body if delivered.status == 0 else f"HTTP {delivered.status}"


def _slack_error(delivered: Delivered) -> str:
    return "operation_timeout" if delivered.body == "timeout" else "dispatch_failed"
