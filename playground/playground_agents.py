"""The page's agent side: session status and its Stop button, streamed task cards, feedback buttons, and the
Messages tab (the person's DM with the app) with the prompts the app suggests there.

Pressing Stop, clicking feedback or opening the Messages tab sends the bot what Slack would send (the emulator's
press_stop, click_feedback and open_messages_tab build it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .page_input import DM_CHANNEL, ME, PageInputError, bad, channel_of, json_object, ts_of
from .slack_agents import find_feedback_buttons

if TYPE_CHECKING:
    from .playground import Playground

Args = dict[str, Any]


class AgentPage:
    """Routes and views of the agent features, for the Playground it belongs to."""

    def __init__(self, playground: Playground) -> None:
        self._playground = playground
        # The button the person last clicked under each answer, (channel, ts) -> "positive" or "negative".
        self.votes: dict[tuple[str, str], str] = {}

    def add_routes(self, app: web.Application) -> None:
        """Stop, feedback clicks and opening the Messages tab."""
        app.router.add_post("/playground/stop", self._stop)
        app.router.add_post("/playground/feedback", self._feedback)
        app.router.add_post("/playground/messages-tab", self._open_messages_tab)

    # ------------------------------------------------------------------ what the person does

    async def _stop(self, request: web.Request) -> web.Response:
        playground = self._playground
        try:
            body = await json_object(request)
            team, channel, thread_ts = (
                playground.workspace_page.team_of(body),
                channel_of(body),
                ts_of(body, "thread_ts"),
            )
            with playground.as_workspace(team):
                envelope = playground.press_stop(channel, thread_ts, user=ME[0])
        except PageInputError as exc:
            return bad(str(exc))
        except LookupError:
            return bad("nothing to stop: the thread's agent is not working")
        # Slack has already stopped the streams; the event tells the app to stop its work.
        playground.in_background(playground.deliver_event(envelope))
        playground.changed()
        return web.json_response({"ok": True, "stopped": envelope["event"]["streaming_message_ts"]})

    async def _feedback(self, request: web.Request) -> web.Response:
        playground = self._playground
        try:
            body = await json_object(request)
            team, channel, ts = playground.workspace_page.team_of(body), channel_of(body), ts_of(body, "ts")
            positive = body.get("positive")
            if not isinstance(positive, bool):
                raise PageInputError("positive must be true or false")
            with playground.as_workspace(team):
                payload = playground.click_feedback(channel, ts, positive, user=ME[0])
        except PageInputError as exc:
            return bad(str(exc))
        except LookupError:
            return bad("that message has no feedback buttons")
        delivered = await playground.require_delivery().interaction(payload)
        if delivered.ok:
            self.votes[(channel, ts)] = "positive" if positive else "negative"
        else:
            playground.notify("the app did not acknowledge the feedback click")
        playground.changed()
        return web.json_response({"ok": True})

    async def _open_messages_tab(self, request: web.Request) -> web.Response:
        # Slack sends app_home_opened every time the person opens the tab; the app sets its prompts then.
        playground = self._playground
        try:
            team = playground.workspace_page.team_of(await json_object(request))
        except PageInputError as exc:
            return bad(str(exc))
        with playground.as_workspace(team):
            envelope = playground.open_messages_tab(ME[0])
        playground.in_background(playground.deliver_event(envelope))
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ what the page shows

    def message_fields(self, channel: str, message: Args) -> Args:
        """What the page shows of a message beyond its text: its stream, task cards, feedback and session."""
        playground, ts = self._playground, message["ts"]
        fields: Args = {"streaming": False, "stream": None, "tasks": [], "plan": None, "feedback": None}
        stream = playground.find_stream(channel, ts)
        if stream is not None:
            fields.update(streaming=stream.state == "streaming", stream=stream.state, plan=stream.plan_title)
            fields["tasks"] = [
                {"id": card.id, "title": card.title, "status": card.status, "details": card.details}
                for card in stream.tasks.values()
            ]
        try:
            _, element = find_feedback_buttons(message.get("blocks") or [])
        except LookupError:
            pass
        else:
            fields["feedback"] = {
                "positive": element["positive_button"]["text"]["text"],
                "negative": element["negative_button"]["text"]["text"],
                "mine": self.votes.get((channel, ts)),
            }
        if not message.get("thread_ts") or message["thread_ts"] == ts:
            session = playground.agent_sessions.get(channel, ts)
            fields["session"] = None if session is None else {"status": session.status, "title": session.title}
        return fields

    def prompts_view(self, channel: str = DM_CHANNEL) -> Args | None:
        """The prompts the app pinned to the Messages tab, with their heading, or None."""
        prompts = self._playground.suggested_prompts.get(channel)
        if not prompts:
            return None
        return {"title": self._playground.suggested_prompts_title.get(channel), "items": prompts}
