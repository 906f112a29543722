"""Crash points: named steps where the crash tests (BOT_CRASH_AT) kill the process, to prove recovery.

Unarmed, a crash point costs one string comparison. Armed, it sends the process SIGKILL: no cleanup, no
flushing, exactly what a dyno dying at that moment looks like.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

CRASH_POINTS = frozenset(
    {
        "intake.recorded",  # the task is in Redis, Slack has not been acknowledged
        "tool.done",  # a tool call is journaled, the next model call has not started
        "memory.written",  # a memory tool call's change is in Redis, the journal does not record the call yet
        "answer.cut",  # a piece of an answer cut at max_tokens is journaled, its continuation has not started
        "answer.journaled",  # the final model answer is journaled, Slack does not show it yet
        "reply.posted",  # Slack shows the answer, the task is not marked done
        "summary.part.journaled",  # one passage of a fold is summarized and journaled, the next is not asked for
        "summary.journaled",  # older turns are summarized and journaled, the task is not marked done
        "timer.firing",  # due timers were read, the script that fires them has not run
        "timer.fired",  # due timers were fired (their tasks queued), the loop has not gone on
    }
)


class CrashPoints:
    """Kills the process at the one armed crash point, if any."""

    def __init__(self, armed: str | None = None) -> None:
        self._armed = armed

    def reached(self, name: str) -> None:
        """Mark that the process has reached `name`; dies there if that point is armed."""
        if name == self._armed:
            log.warning("crash point %s reached: killing the process (BOT_CRASH_AT)", name)
            os.kill(os.getpid(), signal.SIGKILL)
