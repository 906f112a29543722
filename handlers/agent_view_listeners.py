"""Listeners of Slack's agent messaging experience: the Messages tab's suggested prompts, and titles people give.

- `app_home_opened` with tab "messages": pin SUGGESTED_PROMPTS atop the tab (assistant.threads.setSuggestedPrompts
  without thread_ts: with one, an agent app's call silently fails). Slack sends the event on every opening of the
  tab, so each person gets the call at most once per PROMPTS_EVERY seconds per process, and it runs after the
  acknowledgement: a rate-limited call, retried by slack_sdk, must not hold the ack past Slack's 3 seconds.
- `agent_session_title_changed`: a person renamed a session; recorded (store/titles.py) so the bot never renames
  it again. Before the acknowledgement, like intake: if Redis does not take it, Slack delivers it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import ClientError
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.suggested_prompts import PROMPTS_HEADING, SuggestedPrompt
from store.models import ThreadRef
from store.titles import SessionTitles

log = logging.getLogger(__name__)

PROMPTS_EVERY = 600.0  # seconds: the tab's prompts change only with a deploy
MAX_REMEMBERED = 10_000  # people remembered at once: bounds the memory a flood of openings can take


class OncePerWindow:
    """Says yes to a key at most once per `window` seconds, remembering at most `max_keys` keys (the oldest go)."""

    def __init__(
        self, window: float, *, max_keys: int = MAX_REMEMBERED, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._seen: dict[str, float] = {}  # insertion order is time order: a key is only added once it is gone

    def first_in_window(self, key: str) -> bool:
        """True if `key` was not seen in the last `window` seconds; it is then seen now."""
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) <= now - self._window:
            del self._seen[next(iter(self._seen))]  # the oldest first, so this stops at the first one still seen
        if key in self._seen:
            return False
        if len(self._seen) >= self._max_keys:
            del self._seen[next(iter(self._seen))]
        self._seen[key] = now
        return True


class MessagesTabPrompts:
    """Pins the suggested prompts atop a person's Messages tab, in the background, throttled per person."""

    def __init__(self, prompts: tuple[SuggestedPrompt, ...], *, every: float = PROMPTS_EVERY) -> None:
        self._prompts = [prompt.as_slack() for prompt in prompts]
        self._throttle = OncePerWindow(every)
        self._reported: set[str] = set()  # errors logged already: one line each per process, not one per opening
        self._running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def tab_opened(self, client: AsyncWebClient, team_id: str, user_id: str, channel_id: str) -> None:
        """A person opened the Messages tab of their DM `channel_id` with the app: set its prompts if due."""
        if not self._prompts or not self._throttle.first_in_window(f"{team_id}:{user_id}"):
            return
        task = asyncio.ensure_future(self.publish(client, channel_id))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def publish(self, client: AsyncWebClient, channel_id: str) -> None:
        """Set the prompts of the DM `channel_id`; a refusal is logged (once per kind), never raised."""
        try:
            await client.assistant_threads_setSuggestedPrompts(
                channel_id=channel_id, prompts=self._prompts, title=PROMPTS_HEADING
            )
        except SlackApiError as exc:
            self._report(str(exc.response.get("error", "unknown error"))[:80])  # bounded: it names the log line
        except (ClientError, TimeoutError) as exc:
            self._report(f"unreachable ({type(exc).__name__})")

    def _report(self, error: str) -> None:
        if error in self._reported:
            log.debug("Slack did not set the Messages tab's suggested prompts: %s", error)
            return
        self._reported.add(error)
        hint = " (declare the app an agent: manifest.yml's features.agent_view)" if error == "not_agent_app" else ""
        log.info("Slack did not set the Messages tab's suggested prompts: %s%s (logged once per process)", error, hint)


def _team_id(body: dict[str, Any], event: dict[str, Any]) -> str:
    # The same team id intake files a thread under (the envelope's), so that both name one thread.
    return str(body.get("team_id") or event.get("team_id") or event.get("team") or "")


def register_agent_view_listeners(app: AsyncApp, titles: SessionTitles, prompts: MessagesTabPrompts) -> None:
    """Attach the app_home_opened and agent_session_title_changed listeners to the Bolt app."""

    async def handle_app_home_opened(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        channel_id, user_id = event.get("channel"), event.get("user")
        if event.get("tab") != "messages" or not isinstance(channel_id, str) or not isinstance(user_id, str):
            return  # the Home tab (not enabled), or an event without its DM: nothing to pin prompts to
        prompts.tab_opened(client, _team_id(body, event), user_id, channel_id)

    async def handle_session_title_changed(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user_id = str(event.get("user") or "")
        if user_id and user_id == context.bot_user_id:
            return  # the bot's own rename, if Slack tells it back: it titled the session already
        try:
            thread = ThreadRef(_team_id(body, event), str(event["channel"]), str(event["thread_ts"]))
        except (KeyError, ValueError) as exc:
            log.warning("ignoring a malformed agent_session_title_changed event: %s %.100s", type(exc).__name__, exc)
            return
        await titles.person_titled(thread, str(event.get("title") or ""), user_id)

    app.event("app_home_opened")(handle_app_home_opened)
    app.event("agent_session_title_changed")(handle_session_title_changed)
