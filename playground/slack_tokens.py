"""The tokens FakeSlack has issued: who each belongs to, what it may do, whether it still works (expiry, token
rotation, revocation), checked on every Web API call."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .payloads import tokens_revoked_event
from .slack_store import SlackApiFailure
from .slack_workspaces import RefreshGrant, TokenGrant, TokenKind, new_refresh_token, new_token

Args = dict[str, Any]


class SlackTokensMixin:
    """Issues, checks, rotates and revokes FakeSlack's tokens; an install's tokens are filed under its owner, the
    workspace's id (or the org's, for an org-wide install)."""

    def _init_tokens(self, *, token_rotation: bool, token_lifetime: float) -> None:
        # The app's "token rotation" setting: on, installs return expiring tokens and a refresh token.
        self.token_rotation, self.token_lifetime = token_rotation, token_lifetime
        # Codes and token expiry read this clock; a test may replace it to jump ahead.
        self.clock: Callable[[], float] = time.monotonic
        self._tokens: dict[str, TokenGrant] = {}
        self._refresh_grants: dict[str, RefreshGrant] = {}

    def issue_token(
        self, token: str, kind: TokenKind, team_id: str, user_id: str, scopes: str, *, org_wide: bool = False
    ) -> TokenGrant:
        """Make `token` valid for `team_id` (the constructor's tokens come from here; tests may add more); with
        `org_wide`, `team_id` is an org's id and the token is its org-wide install's."""
        grant = TokenGrant(token, kind, team_id, user_id, scopes)
        if org_wide:
            grant.enterprise_id, grant.is_enterprise_install = team_id, True
        self._tokens[token] = grant
        return grant

    def token_grant(self, token: str) -> TokenGrant | None:
        """What the fake knows of `token`, revoked or expired included; None if it never issued it."""
        return self._tokens.get(token)

    def expire_access_tokens(self, team_id: str) -> None:
        """Make the expiring (rotated) tokens of workspace `team_id` (or of org `team_id`'s org-wide install)
        expire now, as twelve hours passing would."""
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

    def _issue(self, team_id: str, kind: TokenKind, user_id: str, scopes: str, *, org_wide: bool = False) -> TokenGrant:
        token = new_token("xoxb" if kind == "bot" else "xoxp", team_id, rotating=self.token_rotation)
        grant = self.issue_token(token, kind, team_id, user_id, scopes, org_wide=org_wide)
        if self.token_rotation:
            grant.expires_at = self.clock() + self.token_lifetime
            grant.refresh_token = new_refresh_token()
            refresh = RefreshGrant(kind, team_id, user_id, scopes, is_enterprise_install=org_wide)
            self._refresh_grants[grant.refresh_token] = refresh
        return grant

    def _token_fields(self, grant: TokenGrant) -> Args:
        fields: Args = {"scope": grant.scopes, "token_type": grant.kind, "access_token": grant.token}
        if grant.expires_at is not None and grant.refresh_token is not None:
            fields.update(refresh_token=grant.refresh_token, expires_in=round(grant.expires_at - self.clock()))
        return fields

    def _bot_grant_for_install(
        self, owner_id: str, bot_user_id: str, scopes: str, *, org_wide: bool = False
    ) -> TokenGrant:
        """Without rotation a reinstall keeps the install's live bot token (with the new scopes); else a new one.
        `owner_id` is the workspace's id, or the org's for an org-wide install."""
        if not self.token_rotation:
            for grant in self._tokens.values():
                if grant.team_id == owner_id and grant.kind == "bot" and not grant.revoked:
                    grant.scopes = scopes
                    return grant
        return self._issue(owner_id, "bot", bot_user_id, scopes, org_wide=org_wide)

    def _revoke_install(self, owner_id: str) -> list[TokenGrant]:
        """Revoke every user and bot token of a workspace's (or an org-wide) install and spend its refresh tokens;
        the tokens revoked now."""
        revoked = [g for g in self._tokens.values() if g.team_id == owner_id and g.kind != "app" and not g.revoked]
        for grant in revoked:
            grant.revoked = True
        for refresh in self._refresh_grants.values():
            if refresh.team_id == owner_id:
                refresh.spent = True
        return revoked


def revoked_tokens_event(revoked: list[TokenGrant]) -> Args:
    """The tokens_revoked event naming the users of `revoked` tokens, by kind."""
    user_ids = sorted({g.user_id for g in revoked if g.kind == "user"})
    bot_user_ids = sorted({g.user_id for g in revoked if g.kind == "bot"})
    return tokens_revoked_event(bot_user_ids=bot_user_ids, user_ids=user_ids)
