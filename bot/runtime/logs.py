"""The process's log: readable text lines (the default) or one JSON object per line (LOG_FORMAT=json).

Both go to stderr, where Heroku's Logplex and most log shippers take them. JSON lines carry, besides the time, level,
logger and message, this process's DYNO on every record and, on every record made while a task or an incoming event
is handled, its workspace, channel, thread and task id (bot/core/log_context.py), so that an operator can search for
everything that happened to one thread or one task across processes.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO
from urllib.parse import urlsplit

from bot.core.log_context import current

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The packages whose log lines are ours: none of them logs what people wrote, at any level.
OUR_LOGGERS = ("bot", "handlers", "store")

# The record attributes ContextFilter adds, and their keys in a JSON line. A LogRecord has `thread` and `process`
# attributes of its own (the OS thread's and process's ids): ours must not overwrite them.
CONTEXT_FIELDS = {"team_id": "team", "channel_id": "channel", "thread_ts": "thread", "task_id": "task_id"}


class ContextFilter(logging.Filter):
    """Adds the dyno and the ids of the work running now to every record a handler writes; drops none.

    On a handler, not a logger: a logger's filters see only the records made on that very logger, a handler's see
    every record that reaches it, the libraries' included. It runs in the code that logs (a StreamHandler writes at
    once, on the caller's task), so it reads that code's context.
    """

    def __init__(self, dyno: str) -> None:
        super().__init__()
        self._dyno = dyno

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the fields; always True."""
        record.dyno = self._dyno
        ids = current()
        for attribute in CONTEXT_FIELDS:
            setattr(record, attribute, getattr(ids, attribute) if ids is not None else None)
        return True


class RedactSecrets(logging.Filter):
    """Replaces given secrets (MCP servers' tokens) in every record a handler writes; drops none.

    On the handler for the reason ContextFilter is: at DEBUG the Anthropic SDK logs whole requests, and a request
    to the MCP connector carries each server's token in its body.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Each as written, and as a JSON string or a repr writes it (a request dumped at DEBUG is either): a secret
        # with a quote or a backslash in it is escaped there. Longest first, so a part never hides the whole.
        forms = {form for secret in secrets if secret for form in _written_forms(secret)}
        self._secrets = tuple(sorted(forms, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message (with its arguments) and any formatted traceback; always True."""
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed call: the handler reports it as logging does, with no message to redact
        if any(secret in message for secret in self._secrets):
            record.msg, record.args = self._redacted(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and any(secret in record.exc_text for secret in self._secrets):
            record.exc_text = self._redacted(record.exc_text)
            record.exc_info = None  # else a formatter may format the traceback again, unredacted
        return True

    def _redacted(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def _written_forms(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]} - {""}


def url_secrets(url: str) -> list[str]:
    """What of an MCP server's URL is kept out of the log: the URL, and its path and query when they are long enough
    to hold a credential (hosted MCP servers often put one there: https://host/s/<secret>/mcp)."""
    parts = urlsplit(url)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return [url, rest] if len(rest) >= 16 else [url]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: a traceback goes in its "exception" field, not on lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (ids absent outside a task are left out, not written as null)."""
        created = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),  # 2026-12-03T17:32:18.123Z
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        dyno = getattr(record, "dyno", None)
        if dyno is not None:
            line["dyno"] = dyno
        for attribute, key in CONTEXT_FIELDS.items():
            value = getattr(record, attribute, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii off: a line stays readable with the emoji and names some messages hold; the stream is UTF-8.
        # The Unicode line breaks JSON leaves as they are are escaped, so that no reader splits the record.
        return json.dumps(line, ensure_ascii=False, default=str).translate(_LINE_BREAKS)


_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def configure_logging(
    level: str,
    library_level: str,
    *,
    log_format: LogFormat = "text",
    dyno: str = "",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Our loggers at `level`, every other logger at `library_level`, all written to `stream` (stderr) in
    `log_format`, with `secrets` redacted; returns the handler it added to the root logger.

    At DEBUG the SDKs log whole requests and responses: prompts, base64 images, message bodies (anthropic,
    slack_sdk, slack_bolt, httpx, httpcore, redis). Setting the root logger's level covers each of them, and any
    logger a library adds later, without a list to keep up to date.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(dyno))
    handler.addFilter(RedactSecrets(secrets))  # `secrets` (the MCP servers' tokens) never reach the log
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    if log_format == "json":
        # Python's warnings (a library's DeprecationWarning) go to stderr as lines of text of their own; through the
        # logging system (logger py.warnings) they are JSON lines like the rest.
        logging.captureWarnings(True)
    root.setLevel(library_level)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return handler
