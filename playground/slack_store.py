"""Channel/thread message store behind FakeSlack, reproducing Slack's thread fields and cursor pagination."""

from __future__ import annotations

import base64
import bisect
import copy
import json
from typing import Any

from .payloads import ts_to_micros

Args = dict[str, Any]


class SlackApiFailure(Exception):
    """Raised inside a Web API handler to produce Slack's {"ok": false, "error": ...} reply."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def truthy(value: Any) -> bool:
    """Interpret a Slack boolean argument in any of the encodings clients send."""
    # slack_sdk turns bools in query params into "1"/"0"; JSON bodies keep real booleans.
    return value in (True, 1, "1", "true", "True")


def maybe_json(value: Any) -> Any:
    """Decode JSON-string arguments (blocks, metadata, attachments) sent in form/query encodings."""
    # Form-encoded requests carry structured arguments as JSON strings; JSON bodies carry objects.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def encode_cursor(ts: str) -> str:
    """Encode a page start like Slack does: base64 of "next_ts:<microseconds>" (opaque to clients)."""
    return base64.b64encode(f"next_ts:{ts_to_micros(ts)}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """Decode a cursor from `encode_cursor` into microseconds, or fail with invalid_cursor."""
    try:
        kind, _, micros = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
        if kind != "next_ts":
            raise ValueError(kind)
        return int(micros)
    except ValueError as exc:
        raise SlackApiFailure("invalid_cursor") from exc


# Slack takes at most this many messages a call (asking for more gets this many); it recommends 200.
MAX_LIMIT = 1000


def page_limit(args: Args, default: int) -> int:
    """The `limit` argument as Slack applies it: at least 1, at most MAX_LIMIT."""
    try:
        return min(MAX_LIMIT, max(1, int(args.get("limit") or default)))
    except ValueError as exc:
        raise SlackApiFailure("invalid_limit") from exc


def time_window(args: Args) -> tuple[int | None, int | None, bool]:
    """The oldest/latest/inclusive arguments in microseconds; a malformed ts is Slack's invalid_ts_* error."""
    bounds: list[int | None] = []
    for name in ("oldest", "latest"):
        value = args.get(name)
        try:
            bounds.append(ts_to_micros(str(value)) if value else None)
        except ValueError as exc:
            raise SlackApiFailure(f"invalid_ts_{name}") from exc
    return bounds[0], bounds[1], truthy(args.get("inclusive"))


def in_range(msg: Args, window: tuple[int | None, int | None, bool]) -> bool:
    """Apply the oldest/latest/inclusive time window (from `time_window`) to one message."""
    ts = ts_to_micros(msg["ts"])
    oldest, latest, inclusive = window
    if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
        return False
    return latest is None or ts < latest or (ts == latest and inclusive)


def paginate(items: list[Args], args: Args, limit: int, *, descending: bool) -> tuple[list[Args], str]:
    """Return one page of `items` starting at args["cursor"] and the next cursor ("" at the end)."""
    if args.get("cursor"):
        start = decode_cursor(str(args["cursor"]))
        if descending:
            items = [m for m in items if ts_to_micros(m["ts"]) <= start]
        else:
            items = [m for m in items if ts_to_micros(m["ts"]) >= start]
    page, rest = items[:limit], items[limit:]
    return page, encode_cursor(rest[0]["ts"]) if rest else ""


class ChannelStore:
    """Messages per channel kept in ts order; thread summaries are computed when messages are read."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.channels: dict[str, list[Args]] = {}

    def insert(self, channel: str, msg: Args) -> None:
        """Store `msg` in `channel`, keeping ts order."""
        bisect.insort(self.channels.setdefault(channel, []), msg, key=lambda m: ts_to_micros(m["ts"]))

    def get(self, channel: str, ts: str) -> Args | None:
        """Return the stored (mutable) message or None."""
        return next((m for m in self.channels.get(channel, []) if m["ts"] == ts), None)

    def find(self, channel: str, ts: str) -> Args:
        """Return the stored (mutable) message or fail with message_not_found."""
        msg = self.get(channel, ts)
        if msg is None:
            raise SlackApiFailure("message_not_found")
        return msg

    def delete(self, channel: str, ts: str) -> None:
        """Remove a message; a thread parent with replies becomes a tombstone so the thread stays readable."""
        msg = self.find(channel, ts)
        if "thread_ts" not in msg and self.replies_of(channel, ts):
            # What conversations.replies shows in place of a deleted parent.
            tombstone = {"type": "message", "subtype": "tombstone", "text": "This message was deleted.", "ts": ts}
            msg.clear()
            msg.update(tombstone, user="USLACKBOT", hidden=True)
        else:
            self.channels[channel].remove(msg)

    def replies_of(self, channel: str, ts: str) -> list[Args]:
        """Replies whose thread_ts is `ts`, in ts order (the parent excluded)."""
        return [m for m in self.channels.get(channel, []) if m.get("thread_ts") == ts and m["ts"] != ts]

    def view(self, channel: str, msg: Args, include_all_metadata: bool = True) -> Args:
        """Return a copy of `msg` as the API would serialize it."""
        out = copy.deepcopy(msg)
        replies = [] if "thread_ts" in msg else self.replies_of(channel, msg["ts"])
        if replies:
            # Thread parents carry summary fields; replies carry thread_ts (+ parent_user_id).
            users = list(dict.fromkeys(r["user"] for r in replies if r.get("user")))
            out.update(
                thread_ts=msg["ts"],
                reply_count=len(replies),
                reply_users_count=len(users),
                latest_reply=replies[-1]["ts"],
                reply_users=users,
                is_locked=False,
                subscribed=False,
            )
        # Metadata posted by other apps is only returned when include_all_metadata is set.
        if "metadata" in out and not include_all_metadata and out.get("app_id") != self.app_id:
            del out["metadata"]
        return out

    def views(self, channel: str, msgs: list[Args], include_all_metadata: bool = True) -> list[Args]:
        """`view` applied to several messages."""
        return [self.view(channel, m, include_all_metadata) for m in msgs]

    def replies(self, args: Args, *, parent_on_every_page: bool) -> Args:
        """Implement conversations.replies: the parent first, then replies oldest-first, paginated."""
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if not channel:
            raise SlackApiFailure("channel_not_found")
        # Channels need no declaring: an unknown one is an existing channel without that message.
        parent = self.get(channel, ts)
        if parent is None:
            raise SlackApiFailure("thread_not_found")
        meta = truthy(args.get("include_all_metadata"))
        if "thread_ts" in parent:
            # Asking with a reply's ts returns just that reply, not the whole thread.
            return {
                "messages": [self.view(channel, parent, meta)],
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            }
        limit, window = page_limit(args, MAX_LIMIT), time_window(args)
        # The parent comes first on every page (whatever the time window), and counts toward `limit` there.
        with_parent = not args.get("cursor") or parent_on_every_page
        replies = [m for m in self.replies_of(channel, ts) if in_range(m, window)]
        page, cursor = paginate(replies, args, max(1, limit - 1) if with_parent else limit, descending=False)
        return {
            "messages": self.views(channel, ([parent] if with_parent else []) + page, meta),
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def history(self, args: Args) -> Args:
        """Implement conversations.history: top-level messages newest-first, paginated."""
        channel = str(args.get("channel", ""))
        if not channel:
            raise SlackApiFailure("channel_not_found")
        window = time_window(args)
        top = [m for m in reversed(self.channels.get(channel, [])) if "thread_ts" not in m and in_range(m, window)]
        page, cursor = paginate(top, args, page_limit(args, 100), descending=True)
        return {
            "messages": self.views(channel, page, truthy(args.get("include_all_metadata"))),
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def add_reaction(self, channel: str, ts: str, name: str, user: str) -> None:
        """Add `user`'s reaction `name`; fails with already_reacted on a duplicate."""
        reactions: list[Args] = self.find(channel, ts).setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        if user in entry["users"]:
            raise SlackApiFailure("already_reacted")
        entry["users"].append(user)
        entry["count"] += 1

    def remove_reaction(self, channel: str, ts: str, name: str, user: str) -> None:
        """Remove `user`'s reaction `name`; fails with no_reaction when absent."""
        msg = self.find(channel, ts)
        reactions: list[Args] = msg.get("reactions", [])
        entry = next((r for r in reactions if r["name"] == name and user in r["users"]), None)
        if entry is None:
            raise SlackApiFailure("no_reaction")
        entry["users"].remove(user)
        entry["count"] -= 1
        msg["reactions"] = [r for r in reactions if r["count"] > 0]
        if not msg["reactions"]:
            del msg["reactions"]
