"""What a listener's unexpected error becomes: Bolt answers Slack 500 (Slack delivers the request again), and the
log gets one line for a Redis that did not take the work (down, failing over, out of memory), a traceback for
anything else."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp

from store.connection import REDIS_FAILURES, first_line, lost_mid_write

log = logging.getLogger(__name__)


async def on_listener_error(error: Exception) -> None:
    """Bolt's error handler for listeners and middleware; the 500 stays as Bolt set it."""
    if isinstance(error, REDIS_FAILURES) or lost_mid_write(error):
        log.warning(
            "Redis did not take a request from Slack (%s): answered 500, Slack sends it again", first_line(error)
        )
        return
    log.error("a Slack request failed: answered 500, Slack sends it again", exc_info=error)


def register_error_handler(bolt: AsyncApp) -> None:
    """Make on_listener_error Bolt's global error handler."""
    bolt.error(on_listener_error)
