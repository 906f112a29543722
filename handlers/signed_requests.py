"""POST /slack/events: a request is bounded, shown to be Slack's and parsed before it costs any work.

Anyone can send this route anything, so each step is the cheapest that can refuse: the declared size and the
signature headers are checked before the body is read; the body is read only up to a cap, within a deadline and a
few at a time (headers that look right are easy to forge, and a body costs memory until its HMAC is checked); the
HMAC is checked over the raw body before it is parsed; and only a signed body of a shape Slack sends goes on to Bolt
(which checks the signature again: one more HMAC, so that the Bolt app is safe whatever serves it) and counts as
intake.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from bot.core import metrics
from bot.tasks.priority import IntakeFirst

log = logging.getLogger(__name__)

# Most of Slack's requests are a few KiB. The largest is an event for a 40,000-character message (Slack's limit),
# sent twice (as text and as rich-text blocks) and JSON-escaped: about 480 kB in Japanese, 960 kB in emoji.
MAX_BODY_BYTES = 1024 * 1024
# Slack wants an answer within 3 seconds and retries a request it got none for: a body still arriving after 10 s
# is not Slack's but someone holding a connection, and what it sent so far, open.
BODY_DEADLINE_SECONDS = 10.0
# Bodies read at once before their signature can be checked. Slack's bodies arrive in milliseconds, a few at a time,
# so dozens in flight are someone else's; the cap bounds what they hold to 32 MiB. Beyond it: 503 (Slack retries).
MAX_UNVERIFIED_READS = 32
# Slack's rule, which slack_sdk's SignatureVerifier applies too: a request signed longer ago is a replay.
MAX_AGE_SECONDS = 5 * 60
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refused(Exception):
    """The request is not Slack's, or not something Slack sends: it gets `status` and nothing else happens."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UnverifiedReads:
    """Reads bodies that cannot be checked until they are read: at most `limit` at once, each within `deadline`."""

    def __init__(self, *, deadline: float, limit: int) -> None:
        self._deadline = deadline
        self._limit = limit
        self._in_flight = 0

    async def read(self, request: web.Request) -> bytes:
        """The body, at most MAX_BODY_BYTES of it; else Refused (503 past the limit, 408 past the deadline, 413)."""
        if self._in_flight >= self._limit:
            raise Refused(503, "too many bodies being read")
        self._in_flight += 1
        try:
            async with asyncio.timeout(self._deadline):
                return await _read_capped(request)
        except TimeoutError:
            raise Refused(408, f"body not received within {self._deadline:g} s") from None
        except OSError as exc:  # ConnectionResetError: aiohttp's word for a sender gone before its body came
            raise Refused(400, f"the sender hung up ({type(exc).__name__})") from None
        except web.RequestPayloadError:  # a broken compressed body: aiohttp decompresses what it is sent
            raise Refused(400, "body not decodable") from None
        finally:
            self._in_flight -= 1


def slack_events_handler(
    bolt: AsyncApp,
    signing_secret: str,
    intake_first: IntakeFirst,
    *,
    body_deadline: float = BODY_DEADLINE_SECONDS,
    max_unverified_reads: int = MAX_UNVERIFIED_READS,
) -> Handler:
    """The handler of POST /slack/events: refuse what is not Slack's at no cost, hand the rest to Bolt."""
    verifier = SignatureVerifier(signing_secret)
    reads = UnverifiedReads(deadline=body_deadline, limit=max_unverified_reads)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()  # the body's reading counts: Slack's 3 seconds run from its sending
        try:
            body = await read_signed_body(request, verifier, reads)
        except Refused as refused:
            # Not Slack's: anyone can send these, so they cost one DEBUG line at most, never a warning.
            log.debug("refused a request to /slack/events: %s", refused.reason)
            return web.Response(status=refused.status, text=refused.reason)
        try:
            bolt_request = bolt_request_of(body, request)
        except Refused as refused:
            log.warning("refused a signed request: %s (%d bytes)", refused.reason, len(body))
            return web.Response(status=refused.status, text=refused.reason)
        with intake_first.taking_in():
            response = await to_aiohttp_response(await bolt.async_dispatch(bolt_request))
        metrics.ACK_SECONDS.observe(time.monotonic() - arrived)  # Slack's requests only: refusals return above
        return response

    return slack_events


async def read_signed_body(request: web.Request, verifier: SignatureVerifier, reads: UnverifiedReads) -> str:
    """The body, once its size and Slack's signature over it are checked; else Refused (4xx, or 503 when busy)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
    signature = request.headers.get("X-Slack-Signature", "")
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not _SIGNATURE.fullmatch(signature) or not _TIMESTAMP.fullmatch(timestamp):
        raise Refused(401, "no valid Slack signature headers")
    if abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        raise Refused(401, "stale timestamp")
    raw = await reads.read(request)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:  # Slack sends UTF-8 only; slack_sdk's verifier cannot hash anything else
        raise Refused(401, "body not UTF-8") from None
    if not verifier.is_valid(body, timestamp, signature):
        raise Refused(401, "invalid signature")
    return body


async def _read_capped(request: web.Request) -> bytes:
    # A chunked body declares no length: stop reading as soon as it passes the cap.
    raw = bytearray()
    while chunk := await request.content.readany():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
    return bytes(raw)


def bolt_request_of(body: str, request: web.Request) -> AsyncBoltRequest:
    """The signed body as Bolt's request; Refused (400) if it is not an event, interaction or command of a shape
    Slack sends, as far as Bolt relies on that shape before any listener runs."""
    content_type = request.headers.get("Content-Type", "").split(";")[0] or None
    try:
        # Parsed exactly as Bolt parses it, so that whatever passes here parses there too.
        payload: object = parse_body(body, content_type)
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError included; RecursionError: nested too deep
        raise Refused(400, f"malformed body ({type(exc).__name__})") from None
    problem = _shape_problem(payload)
    if problem is not None:
        raise Refused(400, problem)
    try:
        return AsyncBoltRequest(body=body, query=request.query_string, headers=dict(request.headers))
    except (AttributeError, TypeError, LookupError, ValueError) as exc:
        # Bolt reads ids out of nested fields (enterprise, authorizations...) assuming Slack's shapes.
        raise Refused(400, f"malformed payload ({type(exc).__name__})") from None


def _shape_problem(payload: object) -> str | None:
    """What Slack would never send, among what Bolt indexes without looking: None if nothing.

    Events and interactions carry a type; slash commands a command; Slack's certificate check ssl_check. Bolt routes
    by an event callback's event["type"], by the first action_id of block actions and by a view's type, and names
    them in its "unhandled request" warning.
    """
    if not isinstance(payload, dict):
        return "not an event, interaction or command"
    fields: dict[str, Any] = payload
    kind = fields.get("type")
    if not (isinstance(kind, str) or "command" in fields or "ssl_check" in fields):
        return "not an event, interaction or command"
    if kind == "event_callback" and not _has_type(fields.get("event")):
        return "an event callback without an event"
    actions = fields.get("actions")
    if kind == "block_actions" and not (isinstance(actions, list) and actions and all(map(_is_action, actions))):
        return "block actions without actions"
    if "view" in fields and not _has_type(fields["view"]):
        return "a view without a type"
    return None


def _has_type(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def _is_action(action: object) -> bool:
    return isinstance(action, dict) and isinstance(action.get("action_id"), str)
