"""Socket Mode side of FakeSlack: the websocket endpoint, envelopes pushed to the client, and its acks."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .waiting import wait_until

Args = dict[str, Any]


class SocketModeMixin:
    """Adds a /socket-mode websocket endpoint and envelope helpers to FakeSlack."""

    app_id: str
    _port: int

    def _init_socket_mode(self) -> None:
        self.socket_received: list[Args] = []
        self.acks: dict[str, Args] = {}
        self.socket_connect_count = 0
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []

    def _issue_socket_url(self) -> str:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        # Real URLs are wss://wss-primary.slack.com/link/?ticket=...; any ws(s) URL works for the SDK.
        return f"ws://127.0.0.1:{self._port}/socket-mode?ticket={ticket}"

    @property
    def socket_connected(self) -> bool:
        """True while at least one Socket Mode client is connected."""
        return any(not ws.closed for ws in self._sockets)

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        # autoping answers the SDK's "sdk-ping-pong:<time>" pings with matching pongs, like Slack does;
        # the SDK treats a missing pong for 4 ping intervals as a stale connection.
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connect_count += 1
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_json(hello)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                self.socket_received.append(data)
                # An ack is {"envelope_id": ...} plus an optional "payload" (e.g. a slash command reply).
                if isinstance(data, dict) and "envelope_id" in data:
                    self.acks[data["envelope_id"]] = data
        finally:
            self._sockets.remove(ws)
        return ws

    async def _live_socket(self, wait: float) -> web.WebSocketResponse:
        await wait_until(lambda: self.socket_connected, timeout=wait)
        return [ws for ws in self._sockets if not ws.closed][-1]

    async def send_socket_envelope(
        self,
        type_: str,
        payload: Args,
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        wait: float = 5.0,
    ) -> str:
        """Send an envelope of `type_` to the newest connected client (waiting up to `wait` s); return its id."""
        envelope_id = str(uuid.uuid4())
        envelope: Args = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type_,
            "accepts_response_payload": accepts_response_payload,
        }
        # Only events_api envelopes carry retry_attempt/retry_reason.
        if retry_attempt is not None:
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason or "")
        await (await self._live_socket(wait)).send_json(envelope)
        return envelope_id

    async def send_socket_event(
        self, payload: Args, *, retry_attempt: int = 0, retry_reason: str = "", wait: float = 5.0
    ) -> str:
        """Deliver an Events API payload (an event_callback envelope) over Socket Mode."""
        return await self.send_socket_envelope(
            "events_api", payload, retry_attempt=retry_attempt, retry_reason=retry_reason, wait=wait
        )

    async def send_socket_command(self, form_fields: dict[str, str], *, wait: float = 5.0) -> str:
        """Deliver a slash command over Socket Mode; the payload is the flat dict of form fields."""
        return await self.send_socket_envelope(
            "slash_commands", dict(form_fields), accepts_response_payload=True, wait=wait
        )

    async def send_socket_interactive(self, payload: Args, *, wait: float = 5.0) -> str:
        """Deliver an interactivity payload (block_actions, view_submission, ...) as it is, not form-encoded."""
        # Only payloads whose ack can carry an answer (a modal's response_action, a menu's options) accept one.
        accepts = payload.get("type") in ("view_submission", "block_suggestion")
        return await self.send_socket_envelope("interactive", payload, accepts_response_payload=accepts, wait=wait)

    async def send_socket_disconnect(self, reason: str = "refresh_requested", *, wait: float = 5.0) -> None:
        """Tell the client to reconnect, as Slack does every few hours (the SDK reopens a new URL)."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}}
        await (await self._live_socket(wait)).send_json(message)

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Args:
        """Wait until the client acknowledges `envelope_id` and return the ack message."""
        ack: Args = await wait_until(lambda: self.acks.get(envelope_id) or {}, timeout=timeout)
        return ack

    async def close_sockets(self) -> None:
        """Close every Socket Mode connection from the server side."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
