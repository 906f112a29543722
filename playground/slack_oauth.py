"""Several workspaces on one FakeSlack: the OAuth v2 install (authorize, oauth.v2.access), token rotation,
per-token auth, and uninstalling with the events Slack sends for it."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .payloads import app_uninstalled_event, event_envelope, tokens_revoked_event
from .slack_store import SlackApiFailure
from .slack_workspaces import (
    CODE_TTL,
    AuthCode,
    OAuthRedirect,
    RefreshGrant,
    TokenGrant,
    TokenKind,
    Workspace,
    new_code,
    new_refresh_token,
    new_token,
)

Args = dict[str, Any]
DEFAULT_CLIENT_ID = "1111111111.2222222222"
DEFAULT_CLIENT_SECRET = "fake-client-secret"


def _scope_string(scopes: str | Sequence[str]) -> str:
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


class SlackOAuthMixin:
    """Adds workspaces, the OAuth install, token rotation and uninstalls to FakeSlack."""

    app_id: str

    def _init_oauth(self, *, client_id: str, client_secret: str, token_rotation: bool, token_lifetime: float) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        # The app's "token rotation" setting: on, installs return expiring tokens and a refresh token.
        self.token_rotation, self.token_lifetime = token_rotation, token_lifetime
        # Codes and token expiry read this clock; a test may replace it to jump ahead.
        self.clock: Callable[[], float] = time.monotonic
        self.workspaces: dict[str, Workspace] = {}
        self._tokens: dict[str, TokenGrant] = {}
        self._refresh_grants: dict[str, RefreshGrant] = {}
        self._codes: dict[str, AuthCode] = {}
        # The app's configured Redirect URLs; a redirect_uri must be one of them or under one. Empty: any.
        self.redirect_urls: list[str] = []
        # Who is signed in to Slack in the browser that opens /oauth/v2/authorize, and whether they click Allow.
        self.browser_user: tuple[str, str, bool] | None = None

    # ------------------------------------------------------------------ workspaces and tokens for tests

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
        """Register a workspace the app can be installed into (not installed until an OAuth exchange)."""
        if team_id in self.workspaces:
            raise ValueError(f"workspace {team_id} already exists")
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

    def issue_token(self, token: str, kind: TokenKind, team_id: str, user_id: str, scopes: str) -> TokenGrant:
        """Make `token` valid for `team_id` (the constructor's tokens come from here; tests may add more)."""
        grant = TokenGrant(token, kind, team_id, user_id, scopes)
        self._tokens[token] = grant
        return grant

    def token_grant(self, token: str) -> TokenGrant | None:
        """What the fake knows of `token`, revoked or expired included; None if it never issued it."""
        return self._tokens.get(token)

    def expire_access_tokens(self, team_id: str) -> None:
        """Make the workspace's expiring (rotated) tokens expire now, as twelve hours passing would."""
        now = self.clock()
        for grant in self._tokens.values():
            if grant.team_id == team_id and grant.expires_at is not None:
                grant.expires_at = min(grant.expires_at, now)

    def authenticate(self, method: str, token: str | None) -> TokenGrant:
        """The grant behind the token of a Web API call, or Slack's error for a missing or unusable one."""
        if not token:
            raise SlackApiFailure("not_authed")
        grant = self._tokens.get(token)
        if grant is None:
            raise SlackApiFailure("invalid_auth")
        grant.check(self.clock())
        # App-level (xapp) tokens only work for apps.connections.*, and bot tokens never do.
        if (grant.kind == "app") != method.startswith("apps.connections."):
            raise SlackApiFailure("not_allowed_token_type")
        return grant

    # ------------------------------------------------------------------ the install

    def sign_in(self, team_id: str, user_id: str, *, approve: bool = True) -> None:
        """Sign a user of `team_id` in to the browser: GET /oauth/v2/authorize then answers as they would."""
        if team_id not in self.workspaces:
            raise LookupError(f"no workspace {team_id}; add_workspace first")
        self.browser_user = (team_id, user_id, approve)

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
        target = self._redirect_target(redirect_uri)
        separator = "&" if "?" in target else "?"
        if not approve:
            query = urlencode({"error": "access_denied", "state": state})
            return OAuthRedirect(f"{target}{separator}{query}", state, error="access_denied")
        code = new_code(team_id)
        self._codes[code] = AuthCode(
            team_id,
            user_id,
            _scope_string(scopes),
            _scope_string(user_scopes),
            redirect_uri,
            self.clock() + CODE_TTL,
        )
        query = urlencode({"code": code, "state": state})
        return OAuthRedirect(f"{target}{separator}{query}", state, code=code)

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
        team_id, user_id, approve = browser
        try:
            redirect = self.authorize(
                team_id,
                user_id,
                query.get("scope", ""),
                query.get("redirect_uri"),
                query.get("state", ""),
                user_scopes=query.get("user_scope", ""),
                approve=approve,
            )
        except SlackApiFailure as exc:
            return web.Response(status=400, text=f"<html><body>{exc.error}</body></html>", content_type="text/html")
        raise web.HTTPFound(redirect.url)

    def oauth_v2_access(self, args: Args, authorization: str) -> Args:
        """oauth.v2.access: exchange a code for tokens, or (grant_type=refresh_token) rotate a token."""
        client_id, client_secret = client_credentials(args, authorization)
        if client_id != self.client_id:
            raise SlackApiFailure("invalid_client_id")
        if not secrets.compare_digest(client_secret, self.client_secret):
            raise SlackApiFailure("bad_client_secret")
        grant_type = str(args.get("grant_type") or "authorization_code")
        if grant_type == "authorization_code":
            return self._exchange_code(args)
        if grant_type == "refresh_token":
            return self._refresh(str(args.get("refresh_token") or ""))
        raise SlackApiFailure("invalid_grant_type")

    def _exchange_code(self, args: Args) -> Args:
        code = self._codes.get(str(args.get("code") or ""))
        if code is None or self.clock() >= code.expires_at:
            raise SlackApiFailure("invalid_code")
        if code.used:
            raise SlackApiFailure("code_already_used")
        # A redirect_uri sent to the authorize step must be repeated here, exactly.
        if code.redirect_uri and args.get("redirect_uri") != code.redirect_uri:
            raise SlackApiFailure("bad_redirect_uri")
        code.used = True
        workspace = self.workspaces[code.team_id]
        workspace.installed = True
        bot = self._bot_grant_for_install(workspace, code.scopes)
        answer: Args = {
            **self._installation_fields(workspace),
            "authed_user": {"id": code.user_id},
            **self._token_fields(bot),
            "bot_user_id": workspace.bot_user_id,
        }
        if code.user_scopes:
            user = self._issue(workspace.team_id, "user", code.user_id, code.user_scopes)
            answer["authed_user"].update(self._token_fields(user))
        return answer

    def _bot_grant_for_install(self, workspace: Workspace, scopes: str) -> TokenGrant:
        """Without rotation a reinstall keeps the workspace's live bot token (with the new scopes); else a new one."""
        if not self.token_rotation:
            for grant in self._tokens.values():
                if grant.team_id == workspace.team_id and grant.kind == "bot" and not grant.revoked:
                    grant.scopes = scopes
                    return grant
        return self._issue(workspace.team_id, "bot", workspace.bot_user_id, scopes)

    def _refresh(self, refresh_token: str) -> Args:
        refresh = self._refresh_grants.get(refresh_token)
        if refresh is None or refresh.spent:
            raise SlackApiFailure("invalid_refresh_token")
        # The old access token keeps working until its own expiry; the refresh token is spent now.
        refresh.spent = True
        workspace = self.workspaces[refresh.team_id]
        grant = self._issue(refresh.team_id, refresh.kind, refresh.user_id, refresh.scopes)
        answer = {**self._installation_fields(workspace), **self._token_fields(grant)}
        if refresh.kind == "bot":
            answer["bot_user_id"] = workspace.bot_user_id
        else:
            answer["user_id"] = refresh.user_id
        return answer

    def _issue(self, team_id: str, kind: TokenKind, user_id: str, scopes: str) -> TokenGrant:
        token = new_token("xoxb" if kind == "bot" else "xoxp", team_id, rotating=self.token_rotation)
        grant = self.issue_token(token, kind, team_id, user_id, scopes)
        if self.token_rotation:
            grant.expires_at = self.clock() + self.token_lifetime
            grant.refresh_token = new_refresh_token()
            self._refresh_grants[grant.refresh_token] = RefreshGrant(kind, team_id, user_id, scopes)
        return grant

    def _token_fields(self, grant: TokenGrant) -> Args:
        fields: Args = {"scope": grant.scopes, "token_type": grant.kind, "access_token": grant.token}
        if grant.expires_at is not None and grant.refresh_token is not None:
            fields.update(refresh_token=grant.refresh_token, expires_in=round(grant.expires_at - self.clock()))
        return fields

    def _installation_fields(self, workspace: Workspace) -> Args:
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
        revoked = [g for g in self._tokens.values() if g.team_id == team_id and g.kind != "app" and not g.revoked]
        for grant in revoked:
            grant.revoked = True
        for refresh in self._refresh_grants.values():
            if refresh.team_id == team_id:
                refresh.spent = True
        user_ids = sorted({g.user_id for g in revoked if g.kind == "user"})
        bot_user_ids = sorted({g.user_id for g in revoked if g.kind == "bot"})
        return [
            self._workspace_envelope(workspace, app_uninstalled_event()),
            self._workspace_envelope(workspace, tokens_revoked_event(bot_user_ids=bot_user_ids, user_ids=user_ids)),
        ]

    def _workspace_envelope(self, workspace: Workspace, event: Args) -> Args:
        return event_envelope(
            event,
            team_id=workspace.team_id,
            api_app_id=self.app_id,
            bot_user_id=workspace.bot_user_id,
            enterprise_id=workspace.enterprise_id,
        )
