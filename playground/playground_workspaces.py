"""The page's workspaces: the ones the person is in, adding one by installing the app there, and uninstalling it.

Adding a workspace is the app's real install (playground/install_flow.py): the bot's /slack/install page, then
Slack's authorize screen, which the page draws from the pending install and where the person clicks Allow or
Cancel, then Slack's redirect back to the bot. Each workspace has its own channels and its own bot token, as on
Slack; the page names the workspace it acts in with every request (`team`), the first one when it does not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .install_flow import BrowserInstall, InstallFailed, PendingInstall
from .page_input import PageInputError, bad, json_object

if TYPE_CHECKING:
    from .playground import Playground

log = logging.getLogger(__name__)

Args = dict[str, Any]


class WorkspacePage:
    """Routes and views of the workspaces, for the Playground it belongs to."""

    def __init__(self, playground: Playground) -> None:
        self._playground = playground
        # The workspaces the person is in, in the order they joined: the emulator's default one, then each one a
        # completed install added. A workspace whose install was cancelled is not joined; the next add reuses it.
        self.joined: list[str] = [playground.team_id]
        # Set once the bot runs (by the supervisor): how the page installs the app.
        self.installs: BrowserInstall | None = None
        self.pending: PendingInstall | None = None

    def add_routes(self, app: web.Application) -> None:
        """Add (or reinstall into) a workspace, answer Slack's authorize screen, uninstall."""
        app.router.add_post("/playground/workspaces", self._add)
        app.router.add_post("/playground/workspaces/authorize", self._authorize)
        app.router.add_post("/playground/workspaces/uninstall", self._uninstall)

    def team_of(self, fields: Mapping[str, Any]) -> str:
        """The workspace a request acts in (its `team`, from its body or query): one the person is in; the first
        one when not given."""
        team = fields.get("team")
        if team in (None, ""):
            return self.joined[0]
        if team not in self.joined:
            raise PageInputError(f"unknown workspace {team!r}; you are in {', '.join(self.joined)}")
        return str(team)

    def is_installed(self, team_id: str) -> bool:
        """Whether the app is installed in the workspace now (Slack sends it nothing from one it is not in)."""
        return self._playground.workspaces[team_id].installed

    # ------------------------------------------------------------------ what the person does

    async def _add(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            installs = self._require_installs()
            if self.pending is not None:
                raise PageInputError("an install is waiting for Allow or Cancel on Slack's screen")
            team = self._reinstall_target(body) if body.get("team") else self._new_workspace()
            pending = await installs.open_install_page(team)
        except PageInputError as exc:
            return bad(str(exc))
        except InstallFailed as exc:
            return bad(str(exc))
        if self.pending is not None:  # another add got there while the bot's page loaded
            return bad("an install is waiting for Allow or Cancel on Slack's screen")
        self.pending = pending
        self._playground.changed()
        return web.json_response({"ok": True, "install": self.pending_view()})

    async def _authorize(self, request: web.Request) -> web.Response:
        try:
            body = await json_object(request)
            installs, pending = self._require_installs(), self.pending
            if pending is None:
                raise PageInputError("no install is waiting for an answer")
            approve = body.get("approve")
            if not isinstance(approve, bool):
                raise PageInputError("approve must be true or false")
        except PageInputError as exc:
            return bad(str(exc))
        self.pending = None  # Slack's screen is answered either way; a failed install starts again from the page
        self._playground.changed()
        try:
            outcome = await installs.answer(pending, approve=approve)
        except InstallFailed as exc:
            return bad(str(exc))
        if not approve:
            return web.json_response({"ok": True, "team": None})
        if not outcome.installed:
            log.warning("the bot did not complete the install into %s: %s", pending.team_id, outcome.detail)
            return bad(f"the bot did not complete the install (HTTP {outcome.status}): {outcome.detail}")
        if pending.team_id not in self.joined:
            self.joined.append(pending.team_id)
        self._playground.changed()
        return web.json_response({"ok": True, "team": pending.team_id})

    async def _uninstall(self, request: web.Request) -> web.Response:
        playground = self._playground
        try:
            team = self.team_of(await json_object(request))
            envelopes = playground.uninstall(team)
        except PageInputError as exc:
            return bad(str(exc))
        except LookupError:
            return bad("the app is not installed in that workspace")

        async def tell_the_app() -> None:
            for envelope in envelopes:
                await playground.deliver_event(envelope)

        # Slack revokes the tokens at once and then tells the app, which must not need them to hear it.
        playground.in_background(tell_the_app())
        playground.changed()
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ what the page shows

    def view(self, team_id: str) -> Args:
        """The workspace switcher: the person's workspaces, the one shown, and Slack's screen if one is waiting."""
        workspaces = self._playground.workspaces
        return {
            "team": team_id,
            "workspaces": [
                {"id": team, "name": workspaces[team].team_name, "installed": workspaces[team].installed}
                for team in self.joined
            ],
            "install": self.pending_view(),
        }

    def pending_view(self) -> Args | None:
        """What Slack's authorize screen shows for the waiting install: the workspace and the scopes asked."""
        pending = self.pending
        if pending is None:
            return None
        workspace = self._playground.workspaces[pending.team_id]
        return {"team": pending.team_id, "name": workspace.team_name, "scopes": pending.scopes}

    # ------------------------------------------------------------------ helpers

    def _require_installs(self) -> BrowserInstall:
        if self.installs is None:
            raise PageInputError("the bot is not running under the playground")
        return self.installs

    def _reinstall_target(self, body: Args) -> str:
        team = self.team_of(body)
        if self.is_installed(team):
            raise PageInputError("the app is already installed in that workspace")
        return team

    def _new_workspace(self) -> str:
        """A workspace the person is not in yet: one whose install was cancelled, else a new one."""
        playground = self._playground
        for team, workspace in playground.workspaces.items():
            if team not in self.joined and not workspace.installed:
                return team
        number = len(playground.workspaces) + 1
        workspace = playground.add_workspace(f"T0TEAM{number}", team_name=f"Workspace {number}")
        with playground.as_workspace(workspace.team_id):
            # users.info knows the app's bot user of each workspace, and the person (one user id everywhere here).
            playground.add_user(workspace.bot_user_id, "claude", real_name="Claude", is_bot=True)
        return workspace.team_id
