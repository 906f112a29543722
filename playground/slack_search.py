"""Slack's search for agents on FakeSlack: action tokens in message events, and assistant.search.context.

As Slack documents it: a bot token searches only with the `action_token` of a message event (a user token needs
none), and finds what the person who wrote that message may see, in the channel types asked for (public channels by
default) and allowed by the app's scopes: `search:read.public` for every public channel of the workspace (the person
need not be in it), `search:read.private` / `.mpim` / `.im` for the person's own private conversations. At most 20
results a call, a cursor for more, and a rate limit of its own (HTTP 429 with Retry-After). What the fake decides
itself, as Slack does not document it: an action token lives ACTION_TOKEN_LIFETIME, a refused one is
`invalid_action_token`, a workspace without the feature answers `feature_not_enabled`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .slack_store import SlackApiFailure
from .slack_workspaces import InActiveWorkspace, TokenGrant

Args = dict[str, Any]
ACTION_TOKEN_LIFETIME = 15 * 60.0
MAX_RESULTS = 20
# Slack allows "10+ requests per minute" with bursts for most teams: the fake allows this many a minute per workspace.
SEARCH_CALLS_PER_MINUTE = 20
CHANNEL_SCOPES = {
    "public_channel": "search:read.public",
    "private_channel": "search:read.private",
    "mpim": "search:read.mpim",
    "im": "search:read.im",
}
CONTENT_SCOPES = {"messages": "", "files": "search:read.files", "channels": "", "users": "search:read.users"}
_WORD = re.compile(r"[a-z0-9]{3,}")


class SearchRateLimited(SlackApiFailure):
    """Too many searches in the workspace this minute: HTTP 429 with Retry-After, as Slack's rate limits answer."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("ratelimited")
        self.retry_after = retry_after


@dataclass(frozen=True)
class ActionGrant:
    """An action token as the fake issued it: for whom, in which workspace and app, until when."""

    user_id: str
    team_id: str
    app_id: str
    expires_at: float


class SlackSearchMixin(InActiveWorkspace):
    """Adds action tokens and assistant.search.context to FakeSlack.

    `disable_search(team)` makes a workspace one without the Real-time Search API; `make_private(channel, members)`
    a private channel (DM channels, ids starting with D, are the people who wrote in them).
    """

    app_id: str
    clock: Callable[[], float]
    _caller: TokenGrant | None

    def _init_search(self) -> None:
        self.action_token_lifetime = ACTION_TOKEN_LIFETIME
        self._action_tokens: dict[str, ActionGrant] = {}
        self._search_off: set[str] = set()
        self._private_members: dict[tuple[str, str], set[str]] = {}
        self._searches: dict[str, deque[float]] = {}

    def _search_handlers(self) -> dict[str, Callable[[Args], Args]]:
        return {"assistant.search.context": self._search_context}

    # ------------------------------------------------------------------ seeding and scripting

    def issue_action_token(self, user_id: str) -> str:
        """A new action token for a message `user_id` writes in the active workspace (what its event carries)."""
        token = f"{secrets.randbelow(10**5)}.{secrets.randbelow(10**5)}.{secrets.token_hex(12)}"
        expires_at = self.clock() + self.action_token_lifetime
        self._action_tokens[token] = ActionGrant(user_id, self.team_id, self.app_id, expires_at)
        return token

    def disable_search(self, team_id: str | None = None) -> None:
        """Make `team_id` (default: the active workspace) one where assistant.search.context is not enabled."""
        self._search_off.add(team_id or self.team_id)

    def make_private(self, channel: str, members: set[str]) -> None:
        """Make `channel` of the active workspace a private channel with these members."""
        self._private_members[(self.team_id, channel)] = set(members)

    # ------------------------------------------------------------------ the method

    def _search_context(self, args: Args) -> Args:
        caller = self._caller
        if caller is None or caller.kind not in ("bot", "user"):
            raise SlackApiFailure("not_allowed_token_type")
        if self.team_id in self._search_off:
            raise SlackApiFailure("feature_not_enabled")
        channel_types = _names(args.get("channel_types"), "public_channel", CHANNEL_SCOPES)
        content_types = _names(args.get("content_types"), "messages", CONTENT_SCOPES)
        scopes = set(caller.scopes.split(","))
        needed = {CHANNEL_SCOPES[name] for name in channel_types} | {CONTENT_SCOPES[name] for name in content_types}
        if not needed - {""} <= scopes:
            raise SlackApiFailure("missing_scope")
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            raise SlackApiFailure("invalid_arguments")
        searcher = self._searcher(caller, args.get("action_token"))
        limit = _limit(args.get("limit"))
        self._count_search()
        include_bots = str(args.get("include_bots", "false")).lower() in ("true", "1")
        found = self._matches(query, searcher, channel_types, include_bots) if "messages" in content_types else []
        if str(args.get("sort", "score")) == "timestamp":
            found.sort(key=lambda hit: float(hit["message_ts"]), reverse=str(args.get("sort_dir", "desc")) == "desc")
        start = _offset(args.get("cursor"))
        page = found[start : start + limit]
        more = start + limit < len(found)
        next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        return {"results": {"messages": page}, "response_metadata": {"next_cursor": next_cursor}}

    def _searcher(self, caller: TokenGrant, action_token: object) -> str:
        """Whose view the search takes: the action token's person with a bot token, the token's own user else."""
        if caller.kind == "user" and not action_token:
            return caller.user_id
        grant = self._action_tokens.get(str(action_token or ""))
        if (
            grant is None
            or grant.team_id != self.team_id
            or grant.app_id != self.app_id
            or self.clock() >= grant.expires_at
        ):
            raise SlackApiFailure("invalid_action_token")
        return grant.user_id

    def _count_search(self) -> None:
        now = self.clock()
        window = self._searches.setdefault(self.team_id, deque())
        while window and window[0] <= now - 60.0:
            window.popleft()
        if len(window) >= SEARCH_CALLS_PER_MINUTE:
            raise SearchRateLimited(max(1, math.ceil(window[0] + 60.0 - now)))
        window.append(now)

    def _matches(self, query: str, user_id: str, channel_types: set[str], include_bots: bool) -> list[Args]:
        """Messages sharing words with the query in conversations `user_id` may see, most shared words first."""
        words = set(_WORD.findall(query.lower()))
        scored: list[tuple[int, float, Args]] = []
        for channel, messages in self.store.channels.items():
            if self._channel_type(channel) not in channel_types or not self._may_see(channel, messages, user_id):
                continue
            for message in messages:
                is_bot = bool(message.get("bot_id"))
                score = len(words & set(_WORD.findall(str(message.get("text", "")).lower())))
                if score and (include_bots or not is_bot):
                    scored.append((score, float(message["ts"]), self._result(channel, message, is_bot)))
        scored.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        return [result for _, _, result in scored]

    def _channel_type(self, channel: str) -> str:
        if channel.startswith("D"):
            return "im"
        return "private_channel" if (self.team_id, channel) in self._private_members else "public_channel"

    def _may_see(self, channel: str, messages: list[Args], user_id: str) -> bool:
        kind = self._channel_type(channel)
        if kind == "public_channel":
            return True  # every public channel of the workspace, member or not
        if kind == "private_channel":
            return user_id in self._private_members[(self.team_id, channel)]
        return any(message.get("user") == user_id for message in messages)

    def _result(self, channel: str, message: Args, is_bot: bool) -> Args:
        ts = str(message["ts"])
        link = f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if message.get("thread_ts") and message["thread_ts"] != ts:
            link += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {
            "author_user_id": str(message.get("user") or ""),
            "team_id": self.team_id,
            "channel_id": channel,
            "message_ts": ts,
            "content": str(message.get("text", "")),
            "is_author_bot": is_bot,
            "permalink": link,
        }


def _names(raw: object, default: str, known: dict[str, str]) -> set[str]:
    """A comma-separated list argument; an unknown name is invalid_arguments."""
    names = {name.strip() for name in str(raw or default).split(",") if name.strip()}
    if not names or not names <= set(known):
        raise SlackApiFailure("invalid_arguments")
    return names


def _limit(raw: object) -> int:
    if raw is None or raw == "":
        return MAX_RESULTS
    try:
        limit = int(str(raw))
    except ValueError:
        raise SlackApiFailure("invalid_arguments") from None
    if not 1 <= limit <= MAX_RESULTS:
        raise SlackApiFailure("invalid_arguments")
    return limit


def _offset(cursor: object) -> int:
    if not cursor:
        return 0
    try:
        kind, _, value = base64.b64decode(str(cursor), validate=True).decode().partition(":")
        if kind == "offset" and value.isdigit():
            return int(value)
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise SlackApiFailure("invalid_cursor")
