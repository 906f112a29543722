"""The page's modals: a view the bot opened in front of the person (views.open), drawn as a form, submitted or
cancelled as Slack would (the emulator's submit_view builds the view_submission payload, view_response applies the
bot's answer: close, errors on fields, update)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .page_input import ME, PageInputError, bad, json_object

if TYPE_CHECKING:
    from .playground import Playground

Args = dict[str, Any]


class ModalPage:
    """Routes and view of the person's open modal, for the Playground it belongs to."""

    def __init__(self, playground: Playground) -> None:
        self._playground = playground

    def add_routes(self, app: web.Application) -> None:
        """Submit and cancel."""
        app.router.add_post("/playground/views/submit", self._submit)
        app.router.add_post("/playground/views/cancel", self._cancel)

    def view(self, team: str) -> Args | None:
        """The modal open in front of the person in `team` (the latest), as the page draws it."""
        mine = [(view_id, opened) for view_id, opened in self._playground.views.items() if opened.team_id == team]
        mine = [(view_id, opened) for view_id, opened in mine if opened.user_id == ME[0]]
        if not mine:
            return None
        view_id, opened = mine[-1]
        view = opened.view
        return {
            "id": view_id,
            "hash": view.get("hash"),
            "title": (view.get("title") or {}).get("text", ""),
            "submit": (view.get("submit") or {}).get("text", "Submit"),
            "close": (view.get("close") or {}).get("text", "Cancel"),
            "blocks": view.get("blocks", []),
            "errors": opened.errors,
        }

    async def _submit(self, request: web.Request) -> web.Response:
        playground = self._playground
        try:
            body = await json_object(request)
            view_id, values = str(body.get("view_id", "")), body.get("values")
            if view_id not in playground.views or not isinstance(values, dict):
                raise PageInputError("that form is gone")
            payload = playground.submit_view(view_id, values, user=ME[0])
        except (PageInputError, ValueError) as exc:
            return bad(str(exc))
        delivered = await playground.require_delivery().interaction(payload)
        outcome = playground.view_response(view_id, delivered.status, delivered.body)
        if outcome == "failed":
            playground.notify("the app's answer to the form was not one Slack takes: the form stays open")
        playground.changed()
        return web.json_response({"ok": True, "outcome": outcome})

    async def _cancel(self, request: web.Request) -> web.Response:
        playground = self._playground
        try:
            view_id = str((await json_object(request)).get("view_id", ""))
        except PageInputError as exc:
            return bad(str(exc))
        playground.close_view(view_id)
        playground.changed()
        return web.json_response({"ok": True})
