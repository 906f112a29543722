"""GET /slack/install and GET /slack/oauth_redirect: the two pages of an OAuth install, served by Bolt's flow.

Neither carries a Slack signature: the install page hands the browser a one-time state (in the link to Slack and in a
cookie), and the redirect is trusted only if it brings that state back, unexpired and unused, in the same browser.
Bolt's flow does both checks and renders the pages, a failure page naming its reason included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bolt_request(request: web.Request) -> AsyncBoltRequest:
    # A GET's meaning is all in its query and its cookie: no body is read.
    return AsyncBoltRequest(body="", query=request.query_string, headers=dict(request.headers))


def oauth_page_routes(flow: AsyncOAuthFlow) -> dict[str, Handler]:
    """The GET routes of the install: {path: handler}, the paths being the flow's own."""

    async def install_page(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await flow.handle_installation(_bolt_request(request)))

    async def oauth_redirect(request: web.Request) -> web.StreamResponse:
        response = await flow.handle_callback(_bolt_request(request))
        if response.status != 200 or "error" in request.query:
            # Bolt logs the reason at DEBUG only; a refused install is worth a line (never the code or state).
            log.warning("an OAuth install was refused (%s)", _reason(request, response.status))
        return await to_aiohttp_response(response)

    return {flow.install_path: install_page, flow.redirect_uri_path: oauth_redirect}


def _reason(request: web.Request, status: int) -> str:
    error = request.query.get("error")
    return f"Slack said {error[:100]!r}" if error is not None else f"HTTP {status}"
