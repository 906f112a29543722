"""Several workspaces on one FakeSlack: the OAuth v2 install (authorize, oauth.v2.access), refreshing rotated
tokens, and uninstalling with the events Slack sends for it. Enterprise Grid orgs group workspaces; their org-wide
install is slack_grid.py's, the tokens themselves slack_tokens.py's."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .payloads import app_uninstalled_event, event_envelope
from .slack_store import SlackApiFailure
from .slack_tokens import SlackTokensMixin, revoked_tokens_event
from .slack_workspaces import CODE_TTL, AuthCode, Enterprise, OAuthRedirect, TokenGrant, Workspace, new_code

Args = dict[str, Any]
DEFAULT_CLIENT_ID = "1111111111.2222222222"
DEFAULT_CLIENT_SECRET = "fake-client-secret"


def scope_string(scopes: str | Sequence[str]) -> str:
    """Scopes as Slack echoes them: comma-separated."""
    return scopes if isinstance(scopes, str) else ",".join(scopes)


def client_credentials(args: Args, authorization: str) -> tuple[str, str]:
    """client_id and client_secret from form fields or, as Slack prefers, an HTTP Basic header."""
    if args.get("client_id") or args.get("client_secret"):
        return str(args.get("client_id") or ""), str(args.get("client_secret") or "")
    if authorization.startswith("Basic "):
        try:
            decoded = base64.b64decode(authorization.removeprefix("Basic "), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, client_secret = decoded.partition(":")
        return client_id, client_secret
    return "", ""


@dataclass(frozen=True)
class BrowserUser:
    """Who is signed in to Slack in the browser that opens /oauth/v2/authorize, and what they answer there."""

    team_id: str
    user_id: str
    approve: bool
    org_wide: bool  # an org admin choosing to install on the whole org rather than this workspace


class SlackOAuthMixin(SlackTokensMixin):
    """Adds workspaces, the OAuth install, token rotation and uninstalls to FakeSlack."""

    app_id: str

    def _init_oauth(self, *, client_id: str, client_secret: str, token_rotation: bool, token_lifetime: float) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self._init_tokens(token_rotation=token_rotation, token_lifetime=token_lifetime)
        self.workspaces: dict[str, Workspace] = {}
        self.enterprises: dict[str, Enterprise] = {}
        self._codes: dict[str, AuthCode] = {}
        # The app's configured Redirect URLs; a redirect_uri must be one of them or under one. Empty: any.
        self.redirect_urls: list[str] = []
        # Who is signed in to Slack in the browser that opens /oauth/v2/authorize, and whether they click Allow.
        self.browser_user: BrowserUser | None = None

    # ------------------------------------------------------------------ workspaces and tokens for tests

    def add_enterprise(
        self,
        enterprise_id: str,
        name: str | None = None,
        *,
        admins: Iterable[str] = (),
        bot_user_id: str | None = None,
        bot_id: str | None = None,
    ) -> Enterprise:
        """Register an Enterprise Grid org; `admins` (org admins or owners) may install the app org-wide.
        Its workspaces are those added with its `enterprise_id`."""
        if enterprise_id in self.enterprises:
            raise ValueError(f"enterprise {enterprise_id} already exists")
        suffix = secrets.token_hex(4).upper()
        # Grid user ids start with W and hold across the org, the app's bot user's too.
        org = Enterprise(
            enterprise_id, name or enterprise_id, bot_user_id or f"W0BOT{suffix}", bot_id or f"B0BOT{suffix}"
        )
        org.admins.update(admins)
        self.enterprises[enterprise_id] = org
        return org

    def add_workspace(
        self,
        team_id: str,
        *,
        team_name: str | None = None,
        enterprise_id: str | None = None,
        enterprise_name: str | None = None,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
    ) -> Workspace:
        """Register a workspace the app can be installed into (not installed until an OAuth exchange); with
        `enterprise_id` it belongs to that org, which is registered if it was not yet."""
        if team_id in self.workspaces:
            raise ValueError(f"workspace {team_id} already exists")
        if enterprise_id is not None:
            org = self.enterprises.get(enterprise_id) or self.add_enterprise(enterprise_id, enterprise_name)
            enterprise_name = enterprise_name or org.name
        suffix = secrets.token_hex(4).upper()
        workspace = Workspace(
            team_id,
            team_name or f"Team {team_id}",
            bot_user_id or f"U0BOT{suffix}",
            bot_id or f"B0BOT{suffix}",
            enterprise_id,
            enterprise_name,
        )
        self.workspaces[team_id] = workspace
        return workspace

    # ------------------------------------------------------------------ the install

    def sign_in(self, team_id: str, user_id: str, *, approve: bool = True, org_wide: bool = False) -> None:
        """Sign a user of `team_id` in to the browser: GET /oauth/v2/authorize then answers as they would
        (`org_wide`: an org admin picks the whole org of `team_id` on the install screen)."""
        if team_id not in self.workspaces:
            raise LookupError(f"no workspace {team_id}; add_workspace first")
        self.browser_user = BrowserUser(team_id, user_id, approve, org_wide)

    def authorize(
        self,
        team_id: str,
        user_id: str,
        scopes: str | Sequence[str],
        redirect_uri: str | None,
        state: str,
        *,
        user_scopes: str | Sequence[str] = "",
        approve: bool = True,
    ) -> OAuthRedirect:
        """A user of `team_id` answering Slack's install screen: Allow gives a single-use code good for ten
        minutes, Cancel (approve=False) gives error=access_denied; both go back to `redirect_uri` with `state`.

        Without `redirect_uri`, Slack uses the app's first Redirect URL; one outside them fails with
        bad_redirect_uri (Slack's error page: the browser is not sent back to the app).
        """
        if team_id not in self.workspaces:
            raise LookupError(f"no workspace {team_id}; add_workspace first")
        grant = AuthCode(team_id, user_id, scope_string(scopes), scope_string(user_scopes), redirect_uri, 0.0)
        return self._answer_install_screen(grant, state, approve=approve)

    def _answer_install_screen(self, code: AuthCode, state: str, *, approve: bool) -> OAuthRedirect:
        """The redirect of an install screen answered: a code for `code`'s install, or access_denied."""
        target = self._redirect_target(code.redirect_uri)
        separator = "&" if "?" in target else "?"
        if not approve:
            query = urlencode({"error": "access_denied", "state": state})
            return OAuthRedirect(f"{target}{separator}{query}", state, error="access_denied")
        value = new_code(code.team_id)
        code.expires_at = self.clock() + CODE_TTL
        self._codes[value] = code
        query = urlencode({"code": value, "state": state})
        return OAuthRedirect(f"{target}{separator}{query}", state, code=value)

    def _redirect_target(self, redirect_uri: str | None) -> str:
        """Where the authorize step sends the browser back, or bad_redirect_uri."""
        if not redirect_uri:
            if not self.redirect_urls:
                raise SlackApiFailure("bad_redirect_uri")
            return self.redirect_urls[0]
        if self.redirect_urls and not any(redirect_uri.startswith(url) for url in self.redirect_urls):
            raise SlackApiFailure("bad_redirect_uri")
        return redirect_uri

    async def _handle_authorize(self, request: web.Request) -> web.Response:
        """GET /oauth/v2/authorize, the page an "Add to Slack" link opens: for the signed-in user it redirects
        (302) to the app with a code or error=access_denied; a bad request gets an error page, no redirect."""
        query, browser = request.query, self.browser_user
        error = ""
        if query.get("client_id") != self.client_id:
            error = "invalid_client_id"
        elif not (query.get("scope") or query.get("user_scope")):
            error = "invalid_scope"
        elif browser is None:
            error = "not_signed_in"  # a real browser would be shown Slack's sign-in page
        if error or browser is None:
            return web.Response(status=400, text=f"<html><body>{error}</body></html>", content_type="text/html")
        try:
            redirect = self._authorize_signed_in(browser, query)
        except (SlackApiFailure, PermissionError) as exc:
            reason = exc.error if isinstance(exc, SlackApiFailure) else str(exc)
            return web.Response(status=400, text=f"<html><body>{reason}</body></html>", content_type="text/html")
        raise web.HTTPFound(redirect.url)

    def _authorize_signed_in(self, browser: BrowserUser, query: Mapping[str, str]) -> OAuthRedirect:
        """The signed-in user's answer to the install screen the authorize page shows."""
        return self.authorize(
            browser.team_id,
            browser.user_id,
            query.get("scope", ""),
            query.get("redirect_uri"),
            query.get("state", ""),
            user_scopes=query.get("user_scope", ""),
            approve=browser.approve,
        )

    def oauth_v2_access(self, args: Args, authorization: str) -> Args:
        """oauth.v2.access: exchange a code for tokens, or (grant_type=refresh_token) rotate a token."""
        client_id, client_secret = client_credentials(args, authorization)
        if client_id != self.client_id:
            raise SlackApiFailure("invalid_client_id")
        if not secrets.compare_digest(client_secret, self.client_secret):
            raise SlackApiFailure("bad_client_secret")
        grant_type = str(args.get("grant_type") or "authorization_code")
        if grant_type == "authorization_code":
            return self._install(self._take_code(args))
        if grant_type == "refresh_token":
            return self._refresh(str(args.get("refresh_token") or ""))
        raise SlackApiFailure("invalid_grant_type")

    def _take_code(self, args: Args) -> AuthCode:
        """The code being exchanged, spent now, or Slack's error for one that cannot be."""
        code = self._codes.get(str(args.get("code") or ""))
        if code is None or self.clock() >= code.expires_at:
            raise SlackApiFailure("invalid_code")
        if code.used:
            raise SlackApiFailure("code_already_used")
        # A redirect_uri sent to the authorize step must be repeated here, exactly.
        if code.redirect_uri and args.get("redirect_uri") != code.redirect_uri:
            raise SlackApiFailure("bad_redirect_uri")
        code.used = True
        return code

    def _install(self, code: AuthCode) -> Args:
        """Install the app into the code's workspace: oauth.v2.access's answer."""
        workspace = self.workspaces[code.team_id]
        workspace.installed = True
        bot = self._bot_grant_for_install(workspace.team_id, workspace.bot_user_id, code.scopes)
        return self._install_answer(code, bot, workspace.bot_user_id)

    def _install_answer(self, code: AuthCode, bot: TokenGrant, bot_user_id: str) -> Args:
        """oauth.v2.access's answer to an exchanged code: the install, the bot token, the installing user's."""
        answer: Args = {
            **self._installation_fields(code.team_id, org_wide=code.is_enterprise_install),
            "authed_user": {"id": code.user_id},
            **self._token_fields(bot),
            "bot_user_id": bot_user_id,
        }
        if code.user_scopes:
            user = self._issue(code.team_id, "user", code.user_id, code.user_scopes, org_wide=bot.is_enterprise_install)
            answer["authed_user"].update(self._token_fields(user))
        return answer

    def _refresh(self, refresh_token: str) -> Args:
        refresh = self._refresh_grants.get(refresh_token)
        if refresh is None or refresh.spent:
            raise SlackApiFailure("invalid_refresh_token")
        # The old access token keeps working until its own expiry; the refresh token is spent now.
        refresh.spent = True
        org_wide = refresh.is_enterprise_install
        grant = self._issue(refresh.team_id, refresh.kind, refresh.user_id, refresh.scopes, org_wide=org_wide)
        answer = {**self._installation_fields(refresh.team_id, org_wide=org_wide), **self._token_fields(grant)}
        if refresh.kind == "bot":
            answer["bot_user_id"] = refresh.user_id
        else:
            answer["user_id"] = refresh.user_id
        return answer

    def _installation_fields(self, owner_id: str, *, org_wide: bool = False) -> Args:
        """app_id, team, enterprise and is_enterprise_install of oauth.v2.access for a workspace's install, or
        for an org-wide one (team null: it is no workspace's)."""
        if org_wide:
            org = self.enterprises[owner_id]
            return {"app_id": self.app_id, "team": None, "enterprise": org.enterprise(), "is_enterprise_install": True}
        workspace = self.workspaces[owner_id]
        return {
            "app_id": self.app_id,
            "team": workspace.team(),
            "enterprise": workspace.enterprise(),
            "is_enterprise_install": False,
        }

    # ------------------------------------------------------------------ leaving

    def uninstall(self, team_id: str) -> list[Args]:
        """Remove the app from `team_id`: revoke every token issued there and return the event envelopes Slack
        sends, app_uninstalled then tokens_revoked (Slack does not promise that order; apps must not rely on it)."""
        workspace = self.workspaces[team_id]
        if not workspace.installed:
            raise LookupError(f"the app is not installed in {team_id}")
        workspace.installed = False
        revoked = revoked_tokens_event(self._revoke_install(team_id))
        return [
            self._workspace_envelope(workspace, app_uninstalled_event()),
            self._workspace_envelope(workspace, revoked),
        ]

    def _workspace_envelope(self, workspace: Workspace, event: Args) -> Args:
        """An event of the workspace's own (team-level) install."""
        return event_envelope(
            event,
            team_id=workspace.team_id,
            api_app_id=self.app_id,
            bot_user_id=workspace.bot_user_id,
            enterprise_id=workspace.enterprise_id,
        )
