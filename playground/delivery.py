"""Delivering events, slash commands and button clicks to the bot the way Slack does: signed, and retried.

Slack waits 3 s for an acknowledgement. An event that gets none (or an error) is sent again, with
X-Slack-Retry-Num and X-Slack-Retry-Reason, up to three times; real Slack waits about a minute and then five
before the later retries, the playground a few seconds so that a person can watch. Slash commands and
interactivity are never retried: Slack shows the user an error instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .payloads import signed_event_request, signed_form_request

log = logging.getLogger(__name__)

ACK_TIMEOUT = 3.0
# Seconds before each retry of an unacknowledged event (Slack's own: 0, 60 and 300).
PLAYGROUND_RETRY_DELAYS = (1.0, 5.0, 15.0)


@dataclass(frozen=True)
class Delivered:
    """How the bot answered one request: HTTP status (0 when it could not be reached) and the body."""

    status: int
    body: str

    @property
    def ok(self) -> bool:
        """Acknowledged, as Slack judges it: any 2xx."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON (a bare acknowledgement)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class SlackDelivery:
    """Sends signed requests to the bot's Request URL."""

    def __init__(
        self, request_url: str, signing_secret: str, *, retry_delays: Sequence[float] = PLAYGROUND_RETRY_DELAYS
    ) -> None:
        self.request_url = request_url
        self._secret = signing_secret
        self._retry_delays = tuple(retry_delays)
        self._session: aiohttp.ClientSession | None = None
        self._retries: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop pending retries and close the HTTP session."""
        for task in self._retries:
            task.cancel()
        await asyncio.gather(*self._retries, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def event(self, envelope: dict[str, Any]) -> Delivered:
        """Deliver an Events API envelope; if it is not acknowledged, retry it in the background."""
        delivered = await self._post_event(envelope, retry_num=None, retry_reason=None)
        if not delivered.ok:
            task = asyncio.create_task(self._retry(envelope, delivered))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        return delivered

    async def form(self, fields: dict[str, str]) -> Delivered:
        """Deliver a slash command (its form fields) or an interactivity `payload` field, once."""
        body = urlencode(fields)
        return await self._post(body, signed_form_request(body, self._secret))

    async def interaction(self, payload: dict[str, Any]) -> Delivered:
        """Deliver a block_actions payload, once."""
        return await self.form({"payload": json.dumps(payload)})

    async def _retry(self, envelope: dict[str, Any], last: Delivered) -> None:
        for number, delay in enumerate(self._retry_delays, start=1):
            await asyncio.sleep(delay)
            reason = "http_timeout" if last.status == 0 and last.body == "timeout" else "http_error"
            last = await self._post_event(envelope, retry_num=number, retry_reason=reason)
            if last.ok:
                return
        log.warning("event %s was never acknowledged; Slack would give up on it now", envelope.get("event_id"))

    async def _post_event(
        self, envelope: dict[str, Any], *, retry_num: int | None, retry_reason: str | None
    ) -> Delivered:
        body, headers = signed_event_request(envelope, self._secret, retry_num=retry_num, retry_reason=retry_reason)
        return await self._post(body, headers)

    async def _post(self, body: str, headers: dict[str, str]) -> Delivered:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                self.request_url, data=body.encode(), headers=headers, timeout=aiohttp.ClientTimeout(total=ACK_TIMEOUT)
            ) as response:
                return Delivered(response.status, await response.text())
        except TimeoutError:
            return Delivered(0, "timeout")
        except aiohttp.ClientError as exc:
            return Delivered(0, f"unreachable: {exc.__class__.__name__}")


__all__ = ["ACK_TIMEOUT", "PLAYGROUND_RETRY_DELAYS", "Delivered", "SlackDelivery"]
