"""The workspaces FakeSlack serves and the tokens it has issued to each, checked on every Web API call."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from .payloads import event_envelope
from .slack_store import ChannelStore, SlackApiFailure

Args = dict[str, Any]
TokenKind = Literal["bot", "user", "app"]
# An authorization code is good for ten minutes, as Slack's are.
CODE_TTL = 10 * 60.0
# With token rotation on, an access token lives twelve hours (expires_in 43200).
ROTATING_TOKEN_LIFETIME = 12 * 60 * 60.0


@dataclass
class Workspace:
    """A Slack workspace the app can be installed into, with the ids its bot user has there."""

    team_id: str
    team_name: str
    bot_user_id: str
    bot_id: str
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    installed: bool = False  # the app is installed into this workspace itself (a team-level install)
    # An admin of its org added the org-wide install to this workspace (team_access_granted): its token works here.
    org_access: bool = False

    def team(self) -> dict[str, str]:
        """The `team` object of oauth.v2.access."""
        return {"id": self.team_id, "name": self.team_name}

    def enterprise(self) -> dict[str, str] | None:
        """The `enterprise` object of oauth.v2.access: null outside an Enterprise Grid org."""
        if self.enterprise_id is None:
            return None
        return {"id": self.enterprise_id, "name": self.enterprise_name or self.enterprise_id}


@dataclass
class Enterprise:
    """An Enterprise Grid org: who may install an app org-wide (its admins), and the app's bot user there, one
    user across all the org's workspaces (Grid user ids are org-wide)."""

    enterprise_id: str
    name: str
    bot_user_id: str
    bot_id: str
    admins: set[str] = field(default_factory=set)
    installed: bool = False  # the app is installed org-wide

    def enterprise(self) -> dict[str, str]:
        """The `enterprise` object of oauth.v2.access and interaction payloads."""
        return {"id": self.enterprise_id, "name": self.name}


class InActiveWorkspace:
    """What FakeSlack's mixins read of the workspace in play (a call's token's, or the one a test chose);
    read-only here, FakeSlack provides them."""

    @property
    def team_id(self) -> str:
        """The active workspace's team id."""
        raise NotImplementedError

    @property
    def bot_user_id(self) -> str:
        """The app's bot user in the active workspace."""
        raise NotImplementedError

    @property
    def bot_id(self) -> str:
        """The app's bot id in the active workspace."""
        raise NotImplementedError

    @property
    def store(self) -> ChannelStore:
        """The active workspace's channels."""
        raise NotImplementedError

    def install_fields(self) -> dict[str, Any]:
        """enterprise_id, enterprise_name and is_enterprise_install of the active workspace's install, as the
        interaction payload builders take them."""
        raise NotImplementedError

    def workspace_envelope(self, event: Args) -> Args:
        """`event` in the envelope Slack sends for the active workspace, with its install's authorization."""
        raise NotImplementedError


@dataclass
class TokenGrant:
    """One access token as Slack knows it: whose it is, what it may do, and whether it still works."""

    token: str
    kind: TokenKind
    team_id: str
    user_id: str  # the bot user for bot tokens, the installing user for user tokens
    scopes: str
    expires_at: float | None = None  # on the fake's clock; None: never (token rotation off)
    revoked: bool = False
    refresh_token: str | None = None  # issued with it when token rotation is on
    # An org-wide install's token: team_id then holds its org's id (enterprise_id), as auth.test's team_id does.
    enterprise_id: str | None = None
    is_enterprise_install: bool = False

    def works_at(self, now: float) -> bool:
        """Whether the token is neither revoked nor expired at `now`."""
        return not self.revoked and (self.expires_at is None or now < self.expires_at)

    def check(self, now: float) -> None:
        """Fail as Slack does for a token that was revoked or has expired."""
        if self.revoked:
            raise SlackApiFailure("token_revoked")
        if self.expires_at is not None and now >= self.expires_at:
            raise SlackApiFailure("token_expired")


class ActiveWorkspaceMixin(InActiveWorkspace):
    """Resolves the workspace in play for FakeSlack: the token's during a Web API call, else the one a test
    picked with `as_workspace`, else the default one; each workspace keeps its own channels."""

    app_id: str
    workspaces: dict[str, Workspace]
    enterprises: dict[str, Enterprise]

    def _init_active_workspace(self, default_team_id: str) -> None:
        self.default_team_id = default_team_id
        # The grant of the call being handled; handlers are synchronous, so no other call can change it meanwhile.
        self._caller: TokenGrant | None = None
        # The workspace that call acts in: its token's, or for an org-wide token the one its arguments name.
        self._call_team: str | None = None
        # The workspace test helpers act in outside a call (`as_workspace`); None: the default one.
        self._viewed_team: str | None = None
        # Each workspace has its own channels: two may use the same channel and thread ids.
        self._stores: dict[str, ChannelStore] = {}

    @property
    def active_workspace(self) -> Workspace:
        """The workspace of the call being handled, else the one `as_workspace` chose, else the default one."""
        if self._caller is not None:
            if self._call_team is None:
                # An org-wide token alone names no workspace: the call's team_id or channel has to.
                raise SlackApiFailure("channel_not_found")
            return self.workspaces[self._call_team]
        return self.workspaces[self._viewed_team or self.default_team_id]

    def org_install(self, workspace: Workspace) -> Enterprise | None:
        """The org whose org-wide install reaches `workspace`, if one does."""
        enterprise = self.enterprises.get(workspace.enterprise_id or "")
        return enterprise if enterprise is not None and enterprise.installed and workspace.org_access else None

    @property
    def team_id(self) -> str:
        """The active workspace's team id."""
        return self.active_workspace.team_id

    @property
    def bot_user_id(self) -> str:
        """The app's bot user in the active workspace (the org's one bot user under an org-wide install)."""
        workspace = self.active_workspace
        org = self.org_install(workspace)
        return org.bot_user_id if org is not None else workspace.bot_user_id

    @property
    def bot_id(self) -> str:
        """The app's bot id in the active workspace (the org's under an org-wide install)."""
        workspace = self.active_workspace
        org = self.org_install(workspace)
        return org.bot_id if org is not None else workspace.bot_id

    def install_fields(self) -> dict[str, Any]:
        """enterprise_id, enterprise_name and is_enterprise_install of the active workspace's install, as the
        interaction payload builders take them."""
        workspace = self.active_workspace
        return {
            "enterprise_id": workspace.enterprise_id,
            "enterprise_name": workspace.enterprise_name,
            "is_enterprise_install": self.org_install(workspace) is not None,
        }

    def workspace_envelope(self, event: Args) -> Args:
        """`event` in the envelope Slack sends for the active workspace, with its install's authorization."""
        workspace = self.active_workspace
        return event_envelope(
            event,
            team_id=workspace.team_id,
            api_app_id=self.app_id,
            bot_user_id=self.bot_user_id,
            enterprise_id=workspace.enterprise_id,
            is_enterprise_install=self.org_install(workspace) is not None,
        )

    @property
    def store(self) -> ChannelStore:
        """The active workspace's channels."""
        team_id = self.active_workspace.team_id
        if team_id not in self._stores:
            self._stores[team_id] = ChannelStore(self.app_id)
        return self._stores[team_id]

    @contextmanager
    def as_workspace(self, team_id: str) -> Iterator[Workspace]:
        """Seed and inspect workspace `team_id`: inside, add_message, post_user_message, messages, bot_replies,
        click_button... use its channels and ids (calls the fake handles always use their token's workspace)."""
        if team_id not in self.workspaces:
            raise LookupError(f"no workspace {team_id}; add_workspace first")
        previous, self._viewed_team = self._viewed_team, team_id
        try:
            yield self.workspaces[team_id]
        finally:
            self._viewed_team = previous


@dataclass
class RefreshGrant:
    """A refresh token: single use, it buys one new access token of its kind for its workspace."""

    kind: TokenKind
    team_id: str  # the org's id for an org-wide install
    user_id: str
    scopes: str
    spent: bool = False
    is_enterprise_install: bool = False


@dataclass
class AuthCode:
    """A code from the authorize step, waiting to be exchanged by oauth.v2.access."""

    team_id: str  # the org's id when an org admin installs org-wide
    user_id: str
    scopes: str
    user_scopes: str
    redirect_uri: str | None
    expires_at: float
    used: bool = False
    is_enterprise_install: bool = False


@dataclass(frozen=True)
class OAuthRedirect:
    """Where Slack sends the browser after the authorize step: a code (approved) or error=access_denied."""

    url: str
    state: str
    code: str | None = None
    error: str | None = None


def new_token(prefix: str, team_id: str, *, rotating: bool) -> str:
    """A fresh token in Slack's shapes: xoxb-/xoxp-..., or xoxe.xoxb-1-... when it expires (token rotation)."""
    body = f"{team_id.lower()}-{secrets.token_hex(12)}"
    return f"xoxe.{prefix}-1-{body}" if rotating else f"{prefix}-{body}"


def new_refresh_token() -> str:
    """A refresh token in Slack's xoxe-1-... shape."""
    return f"xoxe-1-{secrets.token_hex(24)}"


def new_code(team_id: str) -> str:
    """An authorization code, opaque to the app."""
    return f"{team_id.lower()}.{secrets.token_hex(20)}"
