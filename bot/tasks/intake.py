"""Intake: turn a parsed Slack message into a recorded task. Called before Slack gets its acknowledgement."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bot.agent.context import NOTE_MAX_CHARS
from bot.agent.messages import strip_mention
from bot.core.faults import CrashPoints
from store.models import SharedFile, Task, TaskKind, ThreadRef
from store.tasks import ResetResult, SubmitResult, TaskQueue

log = logging.getLogger(__name__)

COMMAND_WORDS = {"status": TaskKind.STATUS, "reset": TaskKind.RESET}


@dataclass(frozen=True)
class IncomingMessage:
    """A human's Slack message, parsed at the edge by handlers/."""

    event_id: str
    team_id: str
    channel_id: str
    user_id: str
    text: str
    ts: str
    thread_ts: str | None
    is_direct_message: bool
    files: tuple[SharedFile, ...] = ()

    def thread(self) -> ThreadRef:
        """The conversation the message belongs to: its thread, or the thread it starts (a top-level message).

        In a DM too: each DM thread is an agent of its own, as Slack's Messages tab shows each as a session.
        """
        return ThreadRef(self.team_id, self.channel_id, self.thread_ts or self.ts)


class Intake:
    """Records mentions and thread messages as tasks, one Redis round trip each."""

    def __init__(self, queue: TaskQueue, crash: CrashPoints | None = None, *, max_input_chars: int = 40_000) -> None:
        self._queue = queue
        self._crash = crash or CrashPoints()
        self._max_input_chars = max_input_chars

    async def mention(self, message: IncomingMessage, bot_user_id: str) -> SubmitResult:
        """A message addressed to the bot: answer it, or run the command word it consists of."""
        text = strip_mention(message.text, bot_user_id)
        if not text and not message.files:
            kind = TaskKind.GREET
        else:
            kind = COMMAND_WORDS.get(text.lower().strip(" .!"), TaskKind.ANSWER)
        return await self._submit(message, kind, text)

    async def thread_message(self, message: IncomingMessage) -> SubmitResult:
        """A message not addressed to the bot: remembered if its thread has an agent, else ignored."""
        return await self._submit(message, TaskKind.NOTE, message.text)

    async def reset(self, task: Task) -> ResetResult:
        """Reset the task's thread now, cancelling its work; the task itself then tells the thread."""
        return await self._queue.reset(task)

    async def channel_reset(self, task: Task) -> SubmitResult:
        """Queue the reset of every agent of a channel (a CHANNEL_RESET task on the channel's CHANNEL_WIDE queue)."""
        return await self._queue.submit(task)

    async def _submit(self, message: IncomingMessage, kind: TaskKind, text: str) -> SubmitResult:
        # A very long message is cut here, before it is stored: the answer (or the note's turn) says so.
        limit = min(self._max_input_chars, NOTE_MAX_CHARS) if kind is TaskKind.NOTE else self._max_input_chars
        cut = len(text) > limit
        task = Task(
            task_id=message.event_id,
            kind=kind,
            thread=message.thread(),
            text=text[:limit],
            user_id=message.user_id,
            message_ts=message.ts,
            created_at=time.time(),
            original_chars=len(text) if cut else 0,
            files=message.files,
        )
        if kind is TaskKind.RESET:
            result = (await self._queue.reset(task)).outcome
        else:
            result = await self._queue.submit(task)
        if result is SubmitResult.DUPLICATE:
            log.info("event %s was delivered again; already recorded", message.event_id)
        self._crash.reached("intake.recorded")
        return result
