"""Bolt's authorization in OAuth mode, on the same TeamBots the outgoing calls use.

Every request Slack sends names its workspace; Bolt asks `authorize` for that workspace's bot token. Ours answers
from TeamBots: the token is the one the tasks use (looked up once a minute per process, not per request), and a
rotating token is refreshed under the same per-workspace lock as theirs, so no two processes spend its single-use
refresh token. A request from a workspace without an installation (uninstalled, or never installed) is acknowledged
and ignored before that, with one line, instead of Bolt's error and its "please reinstall" reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.core.errors import SlackError
from handlers.team_bots import NOT_INSTALLED, TeamBot, TeamBots

log = logging.getLogger(__name__)

# Requests Bolt answers without a token: Slack's URL check, and the events that tell us the tokens are gone.
_NO_TOKEN_TYPES = frozenset({"url_verification", "ssl_check"})
_NO_TOKEN_EVENTS = frozenset({"app_uninstalled", "tokens_revoked"})


def owner_id(context: AsyncBoltContext) -> str | None:
    """Whose install serves the request: its team's, or its org's when the app is installed org-wide (or the
    request is the org's own, naming no team)."""
    if context.is_enterprise_install and context.enterprise_id:
        return context.enterprise_id
    return context.team_id or context.enterprise_id


def payload_team_id(body: dict[str, Any]) -> str | None:
    """The team a request comes from, where the listeners read it for its thread: events' and commands' `team_id`,
    interactions' `team.id` (an org-wide install's may be null: then the clicking user's team)."""
    team = body.get("team")
    user = body.get("user")
    for candidate in (
        body.get("team_id"),
        team.get("id") if isinstance(team, dict) else None,
        user.get("team_id") if isinstance(user, dict) else None,
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


class WorkspaceAuthorize(AsyncAuthorize):
    """Bolt's `authorize`: the workspace's bot from TeamBots, or None when it has none."""

    def __init__(self, bots: TeamBots) -> None:
        self._bots = bots

    async def __call__(  # Bolt passes the actor's ids too (`_actor`) when it resolves user tokens
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **_actor: str | None,
    ) -> AuthorizeResult | None:
        bot = await installed_bot(self._bots, context)
        if bot is None:
            return None
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_user_id=bot.user_id,
            bot_id=bot.bot_id,
            bot_token=bot.token,
            user_id=user_id,
        )


async def installed_bot(bots: TeamBots, context: AsyncBoltContext) -> TeamBot | None:
    """The bot serving the request's workspace, or None if it has no installation."""
    owner = owner_id(context)
    if not owner:
        return None
    try:
        return await bots.bot(owner)
    except SlackError as exc:
        if exc.code == NOT_INSTALLED:
            return None
        raise


def skip_uninstalled(bots: TeamBots) -> Callable[..., Awaitable[BoltResponse | None]]:
    """A middleware run before Bolt's authorize: a request from a workspace without an installation gets an empty
    200 (Slack stops retrying) and one log line. For an org-wide install it also records which team used it, so that
    the tasks of that team's threads, which know only the team, find the org's bot."""

    async def middleware(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        event = body.get("event")
        event_type = event.get("type") if isinstance(event, dict) else None
        if body.get("type") in _NO_TOKEN_TYPES or event_type in _NO_TOKEN_EVENTS:
            await next()
            return None
        if await installed_bot(bots, context) is None:
            log.info("ignoring a request from workspace %s, where the app is not installed", owner_id(context))
            return BoltResponse(status=200, body="")
        team_id = payload_team_id(body)
        # Not from a shared channel: its event may come from another org's team, which the install does not serve.
        org_team = context.is_enterprise_install and not body.get("is_ext_shared_channel")
        if org_team and context.enterprise_id and team_id and team_id != context.enterprise_id:
            await bots.join_org(team_id, context.enterprise_id)
        await next()
        return None

    return middleware
