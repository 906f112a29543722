"""`/agent config` and its modal's submission, in Slack's formats.

Slack's trigger_id opens a modal only within 3 s of the command, and only once; the bot answers the command after
the modal is open (Bolt runs the listener before it responds: process_before_response), or with a line saying why
it did not open.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers.config_desk import ConfigDesk, Submission
from handlers.config_views import CONFIG_CALLBACK, INSTRUCTIONS_BLOCK
from store.connection import REDIS_FAILURES

log = logging.getLogger(__name__)

# What the modal may take to be ready: Slack's trigger_id expires 3 s after the command was run.
OPEN_WITHIN = 2.0
SAVE_WITHIN = 2.0
SAVE_FAILURES: tuple[type[Exception], ...] = (TimeoutError, *REDIS_FAILURES)
NOT_SAVED = "The settings could not be saved just now. Check `/agent status`, then try again."
SLOW = "I could not get this channel's settings in time (my storage is slow). Try again in a minute."


def _ephemeral(text: str) -> dict[str, Any]:
    return {"text": text, "response_type": "ephemeral"}


async def open_config(desk: ConfigDesk, client: AsyncWebClient, ack: AsyncAck, command: dict[str, Any]) -> None:
    """`/agent config`: open the modal for an admin, or say why not."""
    team_id, channel_id, user_id = str(command["team_id"]), str(command["channel_id"]), str(command["user_id"])
    try:
        modal = await asyncio.wait_for(desk.modal(team_id, channel_id, user_id), OPEN_WITHIN)
    except TimeoutError:
        await ack(**_ephemeral(SLOW))
        return
    except REDIS_FAILURES:
        await ack(**_ephemeral(SLOW))
        return
    if isinstance(modal, str):
        await ack(**_ephemeral(modal))
        return
    try:
        await client.views_open(trigger_id=str(command.get("trigger_id") or ""), view=modal)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        log.warning("channel %s: views.open refused the settings modal: %s", channel_id, error)
        await ack(**_ephemeral(f"Slack would not open the settings ({error}). Run `/agent config` again."))
        return
    await ack()  # the modal is the answer


async def submit_in_time(
    desk: ConfigDesk, view: dict[str, Any], user_id: str, within: float = SAVE_WITHIN
) -> Submission:
    """The desk's answer to a submission, or, when Redis fails or it takes longer than Slack waits (3 s), an error on
    the form: the person is told, not shown Slack's "trouble connecting" while the save may still land."""
    try:
        return await asyncio.wait_for(desk.submit(view, user_id), within)
    except SAVE_FAILURES:
        return Submission({"response_action": "errors", "errors": {INSTRUCTIONS_BLOCK: NOT_SAVED}})


def register_config_listeners(app: AsyncApp, desk: ConfigDesk) -> None:
    """Attach the listener of the modal's submission."""
    notes: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def handle_config_submission(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        submission = await submit_in_time(desk, view, str(body["user"]["id"]))
        await ack(**submission.ack)
        if submission.note and submission.target is not None:
            # After the ack: Slack closes the modal at once, and a slow post does not hold it open.
            note = asyncio.ensure_future(desk.post_note(submission.target, submission.note))
            notes.add(note)
            note.add_done_callback(notes.discard)

    app.view(CONFIG_CALLBACK)(handle_config_submission)
