"""Slack's search for agents on the Web API: assistant.search.context with a message's action token.

Not every workspace allows it: the Real-time Search API may be off there, the install may predate the
`search:read.public` scope, or the token may be of a type the method refuses. Slack's refusal is remembered per
workspace for a while (and logged once, at INFO), so that the tool says so at once instead of asking Slack on every
call; after that Slack is asked again, so an admin who adds the scope (a reinstall) is noticed without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.errors import SearchTokenRefused, SearchUnavailable, SlackError
from bot.core.ports import SearchHit, SearchPage

log = logging.getLogger(__name__)

SEARCH_METHOD = "assistant.search.context"
# Slack's answers meaning "not in this workspace, whoever asks": the method is not enabled for the team or the app,
# the install lacks the scope, the token type is refused, or an org-level token was used where a workspace's is needed.
SEARCH_NOT_ALLOWED = frozenset(
    {
        "missing_scope",
        "not_allowed_token_type",
        "feature_not_enabled",
        "access_denied",
        "team_access_not_granted",
        "enterprise_is_restricted",
        "unknown_method",
    }
)
# Answers about the action token itself: it expired, or was not issued to this app in this workspace.
ACTION_TOKEN_REFUSED = frozenset({"invalid_action_token", "action_token_expired", "expired_action_token"})
# How long a workspace's refusal is believed before Slack is asked again.
REFUSAL_SECONDS = 15 * 60.0
# Slack returns at most 20 results a call.
MAX_SEARCH_LIMIT = 20


class SearchContext:
    """The search part of the gateway (mixed into handlers.gateway.WebApiGateway)."""

    _search_refused: dict[str, tuple[float, str]]  # by team: (until, Slack's code), on _search_clock
    _search_clock: Callable[[], float] = staticmethod(time.monotonic)  # a test may replace it to jump ahead

    async def _call(
        self, team_id: str, method: str, make_call: Callable[[AsyncWebClient], Awaitable[AsyncSlackResponse]]
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def search_context(
        self, team_id: str, *, query: str, action_token: str, limit: int, cursor: str = ""
    ) -> SearchPage:
        """Search the workspace's public channels with the asker's action token; SearchUnavailable where Slack
        refused the workspace within REFUSAL_SECONDS, SearchTokenRefused for a token Slack no longer takes."""
        refused = self._search_refused.get(team_id)
        if refused is not None and self._search_clock() < refused[0]:
            raise SearchUnavailable(f"Slack refused {SEARCH_METHOD} in this workspace ({refused[1]})", refused[1])
        # A form body, not the SDK method's query string: the action token stays out of URLs (and proxies' logs).
        form = {
            "team_id": team_id,  # which workspace an org-wide install's token searches (a workspace token's is its own)
            "query": query,
            "action_token": action_token,
            "channel_types": "public_channel",  # answers are read by a whole channel: never the asker's private ones
            "content_types": "messages",
            "limit": str(max(1, min(MAX_SEARCH_LIMIT, limit))),
            "include_bots": "false",
        }
        if cursor:
            form["cursor"] = cursor
        try:
            data = await self._call(team_id, SEARCH_METHOD, lambda client: client.api_call(SEARCH_METHOD, data=form))
        except SlackError as exc:
            raise self._search_error(team_id, exc) from None
        self._search_refused.pop(team_id, None)
        return _search_page(data)

    def _search_error(self, team_id: str, exc: SlackError) -> SlackError:
        """The error a refusal means: the workspace's (remembered, said once) or the token's, else as it was."""
        if exc.code in ACTION_TOKEN_REFUSED:
            return SearchTokenRefused(str(exc), exc.code)
        if exc.code not in SEARCH_NOT_ALLOWED:
            return exc
        if team_id not in self._search_refused:  # said once: a supported way to run
            log.info(
                "workspace %s: Slack refused %s (%s): searching Slack is off there for %d minutes (add the "
                "search:read.public scope and reinstall, or ask Slack to enable the Real-time Search API)",
                team_id,
                SEARCH_METHOD,
                exc.code,
                REFUSAL_SECONDS // 60,
            )
        self._search_refused[team_id] = (self._search_clock() + REFUSAL_SECONDS, exc.code)
        return SearchUnavailable(str(exc), exc.code)


def _search_page(data: dict[str, Any]) -> SearchPage:
    """The messages of a search answer; entries without a channel or ts (a shape Slack never sends) are skipped."""
    results = data.get("results") or {}
    raw_messages = results.get("messages") if isinstance(results, dict) else None
    hits: list[SearchHit] = []
    for raw in raw_messages if isinstance(raw_messages, list) else []:
        if not isinstance(raw, dict) or not raw.get("channel_id") or not raw.get("message_ts"):
            continue
        hits.append(
            SearchHit(
                channel_id=str(raw["channel_id"]),
                ts=str(raw["message_ts"]),
                author_user_id=str(raw.get("author_user_id") or ""),
                text=str(raw.get("content") or ""),
                permalink=str(raw.get("permalink") or ""),
                is_bot=raw.get("is_author_bot") is True,
            )
        )
    cursor = (data.get("response_metadata") or {}).get("next_cursor") or ""
    return SearchPage(hits, str(cursor))
