"""Enterprise Grid org-wide installs on FakeSlack: an org admin installs the app on the whole org, admins then add
it to workspaces, and its one token works in those (and only those) workspaces.

What Slack does, as its docs describe it (https://api.slack.com/enterprise/apps/reference,
https://api.slack.com/enterprise/org-ready-apps, https://api.slack.com/enterprise/apps/changes-apis):
- oauth.v2.access answers team null, the enterprise, is_enterprise_install true; the app is in no workspace yet.
- An admin adding it to workspaces sends team_access_granted; removing it, team_access_revoked.
- The token acts in the workspace a call's team_id names (ignored for workspace tokens), else the channel's;
  a workspace it was not added to is team_access_not_granted.
- Uninstalling from the org revokes the install's tokens; app_uninstalled and tokens_revoked name only the org.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .grid_payloads import org_event_envelope, team_access_granted_event, team_access_revoked_event
from .payloads import app_uninstalled_event
from .slack_oauth import BrowserUser, SlackOAuthMixin, scope_string
from .slack_store import ChannelStore, SlackApiFailure
from .slack_tokens import revoked_tokens_event
from .slack_workspaces import AuthCode, Enterprise, OAuthRedirect, TokenGrant

Args = dict[str, Any]


class SlackGridMixin(SlackOAuthMixin):
    """Adds Enterprise Grid org-wide installs to FakeSlack's workspaces and OAuth install."""

    _stores: dict[str, ChannelStore]

    def _init_grid(self, *, org_deploy_enabled: bool) -> None:
        # The app setting "org_deploy_enabled" (Org Level Apps): off, Slack offers no org-wide install at all.
        self.org_deploy_enabled = org_deploy_enabled

    # ------------------------------------------------------------------ the install

    def authorize_org(
        self,
        enterprise_id: str,
        user_id: str,
        scopes: str | Sequence[str],
        redirect_uri: str | None,
        state: str,
        *,
        user_scopes: str | Sequence[str] = "",
        approve: bool = True,
    ) -> OAuthRedirect:
        """An org admin answering the install screen for the whole org, as `authorize` does for a workspace.

        Slack offers the org-wide install only for an app with org_deploy_enabled and only to the org's admins and
        owners: anyone else gets PermissionError (the screen has no such choice for them).
        """
        org = self.enterprises.get(enterprise_id)
        if org is None:
            raise LookupError(f"no enterprise {enterprise_id}; add_enterprise first")
        if not self.org_deploy_enabled:
            raise PermissionError("the app is not enabled for org-wide deployment (org_deploy_enabled)")
        if user_id not in org.admins:
            raise PermissionError(f"{user_id} is not an admin or owner of {enterprise_id}")
        code = AuthCode(
            enterprise_id,
            user_id,
            scope_string(scopes),
            scope_string(user_scopes),
            redirect_uri,
            0.0,
            is_enterprise_install=True,
        )
        return self._answer_install_screen(code, state, approve=approve)

    def _authorize_signed_in(self, browser: BrowserUser, query: Mapping[str, str]) -> OAuthRedirect:
        if not browser.org_wide:
            return super()._authorize_signed_in(browser, query)
        enterprise_id = self.workspaces[browser.team_id].enterprise_id
        if enterprise_id is None:
            raise PermissionError(f"{browser.team_id} belongs to no Enterprise Grid org")
        return self.authorize_org(
            enterprise_id,
            browser.user_id,
            query.get("scope", ""),
            query.get("redirect_uri"),
            query.get("state", ""),
            user_scopes=query.get("user_scope", ""),
            approve=browser.approve,
        )

    def _install(self, code: AuthCode) -> Args:
        if not code.is_enterprise_install:
            return super()._install(code)
        org = self.enterprises[code.team_id]
        # Installed on the org, the app is in none of its workspaces until an admin adds it (grant_team_access).
        org.installed = True
        bot = self._bot_grant_for_install(org.enterprise_id, org.bot_user_id, code.scopes, org_wide=True)
        return self._install_answer(code, bot, org.bot_user_id)

    # ------------------------------------------------------------------ workspaces of the org

    def grant_team_access(self, enterprise_id: str, team_ids: Iterable[str] | None = None) -> Args:
        """An org admin adds the org-wide app to workspaces of the org (all of them when None): its token works
        there from now on. Returns the team_access_granted envelope, naming the workspaces newly added."""
        teams = self._org_teams(enterprise_id, team_ids)
        added = [team for team in teams if not self.workspaces[team].org_access]
        if not added:
            raise ValueError(f"the app already has access to {', '.join(teams)}")
        for team in added:
            self.workspaces[team].org_access = True
        return org_event_envelope(team_access_granted_event(added), enterprise_id=enterprise_id, api_app_id=self.app_id)

    def revoke_team_access(self, enterprise_id: str, team_ids: Iterable[str] | None = None) -> Args:
        """An org admin removes the org-wide app from workspaces (all it is in when None): its token stops working
        there. Returns the team_access_revoked envelope."""
        teams = self._org_teams(enterprise_id, team_ids)
        removed = [team for team in teams if self.workspaces[team].org_access]
        if not removed:
            raise ValueError(f"the app has no access to {', '.join(teams)}")
        for team in removed:
            self.workspaces[team].org_access = False
        return org_event_envelope(
            team_access_revoked_event(removed), enterprise_id=enterprise_id, api_app_id=self.app_id
        )

    def org_teams(self, enterprise_id: str) -> list[str]:
        """The workspaces the org-wide install of `enterprise_id` has been added to."""
        return [t for t, w in self.workspaces.items() if w.enterprise_id == enterprise_id and w.org_access]

    def _org_teams(self, enterprise_id: str, team_ids: Iterable[str] | None) -> list[str]:
        """`team_ids` (default: all the org's workspaces), checked to be workspaces of the org-wide installed org."""
        org = self.enterprises.get(enterprise_id)
        if org is None or not org.installed:
            raise LookupError(f"the app is not installed org-wide on {enterprise_id}")
        members = [t for t, w in self.workspaces.items() if w.enterprise_id == enterprise_id]
        teams = members if team_ids is None else list(team_ids)
        strangers = [team for team in teams if team not in members]
        if strangers or not teams:
            raise ValueError(f"not workspaces of {enterprise_id}: {', '.join(strangers) or 'none given'}")
        return teams

    # ------------------------------------------------------------------ leaving

    def uninstall_org(self, enterprise_id: str) -> list[Args]:
        """An org admin removes the app from the whole org: it leaves every workspace it was added to, all the
        install's tokens are revoked. Returns the envelopes Slack sends: team_access_revoked (if it was in any
        workspace), then app_uninstalled and tokens_revoked, which name only the org."""
        org = self.enterprises.get(enterprise_id)
        if org is None or not org.installed:
            raise LookupError(f"the app is not installed org-wide on {enterprise_id}")
        envelopes = [self.revoke_team_access(enterprise_id)] if self.org_teams(enterprise_id) else []
        org.installed = False
        revoked = revoked_tokens_event(self._revoke_install(enterprise_id))
        for event in (app_uninstalled_event(), revoked):
            envelopes.append(org_event_envelope(event, enterprise_id=enterprise_id, api_app_id=self.app_id))
        return envelopes

    # ------------------------------------------------------------------ what a token reaches

    def grant_reaches(self, grant: TokenGrant, team_id: str) -> bool:
        """Whether `grant`'s token acts in workspace `team_id`: its own workspace's, or for an org-wide token a
        workspace of its org the install was added to."""
        if not grant.is_enterprise_install:
            return grant.team_id == team_id
        workspace = self.workspaces.get(team_id)
        org = self.enterprises.get(grant.team_id)
        return (
            workspace is not None
            and org is not None
            and org.installed
            and workspace.enterprise_id == org.enterprise_id
            and workspace.org_access
        )

    def call_team(self, grant: TokenGrant, args: Args) -> str | None:
        """The workspace a Web API call with `grant`'s token acts in; None when an org-wide token's call names
        none (fine for calls that need no workspace, like auth.test or users.info)."""
        if not grant.is_enterprise_install:
            return grant.team_id  # Slack ignores team_id with a workspace token
        reachable = [team for team in self.workspaces if self.grant_reaches(grant, team)]
        named = str(args.get("team_id") or "")
        if named:
            if named not in reachable:
                raise SlackApiFailure("team_access_not_granted")
            return named
        channel = str(args.get("channel") or args.get("channel_id") or "")
        if channel:
            holders = [
                t for t, w in self.workspaces.items() if w.enterprise_id == grant.team_id and self._has(t, channel)
            ]
            found = [team for team in holders if team in reachable]
            if found:
                return found[0]
            if holders:
                raise SlackApiFailure("channel_not_found")  # in a workspace of the org the app was not added to
        # A channel seen nowhere yet: with a single workspace to act in, the fake lets it come into being there.
        return reachable[0] if len(reachable) == 1 else None

    def _has(self, team_id: str, channel: str) -> bool:
        store = self._stores.get(team_id)
        return store is not None and channel in store.channels

    def org_auth_test(self, grant: TokenGrant) -> Args:
        """auth.test for an org-wide install's token: the org in place of a workspace (team_id is the org's id)."""
        org: Enterprise = self.enterprises[grant.team_id]
        answer: Args = {
            "url": f"https://{org.enterprise_id.lower()}.enterprise.slack.com/",
            "team": org.name,
            "user": "claude" if grant.kind == "bot" else grant.user_id,
            "team_id": org.enterprise_id,
            "user_id": grant.user_id,
            "enterprise_id": org.enterprise_id,
            "is_enterprise_install": True,
        }
        if grant.kind == "bot":
            answer["bot_id"] = org.bot_id
        return answer
