"""Intake: turn a parsed Slack message into a recorded task. Called before Slack gets its acknowledgement.

A stop is the exception: it acts at once, not as a task, which would wait behind the very answer it is to stop.
A mention the gate refuses (bot/tasks/gate.py: allow-lists, rate limits) becomes no task of its own: at most a
NOTICE task that tells the thread so, once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from bot.agent.context import NOTE_MAX_CHARS
from bot.agent.messages import strip_mention
from bot.core import metrics
from bot.core.errors import SlackError
from bot.core.faults import CrashPoints
from bot.core.log_context import logs_as_event
from bot.core.ports import SlackGateway
from bot.tasks.admins import Admins
from bot.tasks.gate import NOT_ALLOWED, Admission, Gate, Refusal
from store.connection import REDIS_FAILURES
from store.models import SharedFile, Task, TaskKind, ThreadRef
from store.schedules import ScheduleStore
from store.stops import StopOutcome, StopRequests, StopResult
from store.tasks import ResetResult, SubmitResult, TaskQueue

log = logging.getLogger(__name__)

COMMAND_WORDS = {"status": TaskKind.STATUS, "reset": TaskKind.RESET}
PERMISSION = "permission"  # the refused mentions' reason for a reset or stop from someone who may not
STOP_WORD = "stop"
STOP_NOTES = {
    StopResult.STOPPING: "Stopping…",
    StopResult.ALREADY_STOPPING: "Already stopping.",
    StopResult.NOTHING_RUNNING: "Nothing is running here.",
}


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
    from_bot: bool = False  # written by a bot of ALLOWED_BOT_IDS (the user id is its bot user's, or its bot id)
    action_token: str | None = field(default=None, repr=False)  # Slack's token for searching as the writer

    def thread(self) -> ThreadRef:
        """The conversation the message belongs to: its thread, or the thread it starts (a top-level message).

        In a DM too: each DM thread is an agent of its own, as Slack's Messages tab shows each as a session.
        """
        return ThreadRef(self.team_id, self.channel_id, self.thread_ts or self.ts)


class Intake:
    """Records mentions and thread messages as tasks, one Redis round trip each (one more with rate limits on)."""

    def __init__(
        self,
        queue: TaskQueue,
        crash: CrashPoints | None = None,
        *,
        stops: StopRequests,
        slack: SlackGateway,
        max_input_chars: int = 40_000,
        gate: Gate | None = None,
        admins: Admins | None = None,
        schedules: ScheduleStore | None = None,
    ) -> None:
        self._queue = queue
        self._schedules = schedules  # a reset and a Stop cancel the thread's schedules (None: none to cancel)
        self._gate = gate  # None: everyone, without limits
        self._admins = admins  # who may reset or stop a thread (None: anyone)
        self._stops = stops
        self._slack = slack  # for the one thing intake says itself: what a `stop` did
        self._crash = crash or CrashPoints()
        self._max_input_chars = max_input_chars

    @logs_as_event
    async def mention(self, message: IncomingMessage, bot_user_id: str) -> SubmitResult | StopOutcome | Refusal:
        """A message addressed to the bot: answer it, or run the command word it consists of (`stop`: at once),
        unless the gate refuses it, or it is a `reset` or `stop` from someone who may not."""
        text = strip_mention(message.text, bot_user_id)
        word = text.lower().strip(" .!")
        admission = await self._admit(message, counted=word != STOP_WORD)
        if admission.refusal is not None:
            return await self._refuse(message, admission.refusal)
        if word in (STOP_WORD, "reset") and (refusal := await self._thread_refusal(message, word)):
            return await self._refuse(message, refusal)
        if not text and not message.files:
            kind = TaskKind.GREET
        elif word == STOP_WORD:
            return await self._stop_here(message)
        else:
            kind = COMMAND_WORDS.get(word, TaskKind.ANSWER)
        result = await self._submit(message, kind, text)
        if result is SubmitResult.DUPLICATE and admission.counted_in:
            await self._give_back(admission, message.event_id)
        # Slack's retries of an event count apart: `accepted` counts each mention once.
        metrics.MENTIONS.labels(outcome=result.value, reason="none").inc()
        return result

    async def _admit(self, message: IncomingMessage, *, counted: bool) -> Admission:
        if self._gate is None:
            return Admission()
        try:
            return await self._gate.admit(message, counted=counted)
        except REDIS_FAILURES:
            metrics.REDIS_ERRORS.labels(where="intake").inc()
            raise  # Slack is answered 500 and delivers the event again, which the limits count once

    async def _give_back(self, admission: Admission, event_id: str) -> None:
        # The event was recorded before (its first delivery aged out of a window, or was refused with a notice).
        if self._gate is None:
            return
        try:
            await self._gate.give_back(admission, event_id)
        except REDIS_FAILURES as exc:  # a slot held for a minute at worst: not worth Slack's redelivery
            log.warning("could not uncount event %s from the rate limits: %s", event_id, type(exc).__name__)

    async def _refuse(self, message: IncomingMessage, refusal: Refusal) -> Refusal:
        """Tell the thread why the gate refused the mention (a NOTICE task), unless it was told already."""
        log.info("event %s refused (%s)", message.event_id, refusal.reason)
        if refusal.notice is None:
            metrics.MENTIONS.labels(outcome="refused", reason=refusal.reason).inc()
            return refusal
        result = await self._submit(message, TaskKind.NOTICE, refusal.notice)
        if result is SubmitResult.DUPLICATE:
            metrics.MENTIONS.labels(outcome="duplicate", reason="none").inc()
        else:
            metrics.MENTIONS.labels(outcome="refused", reason=refusal.reason).inc()
        return refusal

    async def stop(self, thread: ThreadRef, user_id: str) -> StopOutcome:
        """Stop the thread's running answer now, wherever it runs (store/stops.py)."""
        outcome = await self._stops.request(thread, user_id)
        log.info("stop of thread %s asked by %s: %s", thread.encode(), user_id, outcome.result.value)
        await self._cancel_schedules(thread, "stop")
        return outcome

    async def _cancel_schedules(self, thread: ThreadRef, why: str) -> None:
        """A reset or a Stop ends the thread's scheduled work too (after the reset revoked the thread's lease: a run
        cancelled by it can no longer add a schedule, as ScheduleStore.create is fenced)."""
        if self._schedules is None:
            return
        cancelled = await self._schedules.cancel_thread(thread)
        if cancelled:
            log.info("%s of thread %s cancelled %d schedule(s)", why, thread.encode(), cancelled)

    async def _stop_here(self, message: IncomingMessage) -> StopOutcome:
        """`@bot stop` in a thread: stop its answer, and say in the thread what that did."""
        thread = message.thread()
        outcome = await self.stop(thread, message.user_id)
        try:
            await self._slack.post_reply(thread, STOP_NOTES[outcome.result])
        except SlackError as exc:  # the stop is done whatever the note does: it is a courtesy
            log.warning("could not say in thread %s what the stop did: %s", thread.encode(), exc)
        return outcome

    # --- issue 19: admins and budgets ---
    async def _thread_refusal(self, message: IncomingMessage, word: str) -> Refusal | None:
        """`@bot reset` or `@bot stop` in a thread from someone who neither administers the bot nor started or wrote
        in the thread before (bot/tasks/admins.py): refused, with a notice saying who may."""
        if self._admins is None or message.thread_ts is None:
            return None  # a top-level mention starts a thread of its own: its author started it
        if await self._admins.may_act_on_thread(message.thread(), message.user_id, before_ts=message.ts):
            return None
        what = "reset this thread's agent" if word == "reset" else "stop this thread's answer"
        return Refusal(PERMISSION, self._admins.who_may(what, thread=True))

    # --- end of admins and budgets ---

    @logs_as_event
    async def thread_message(self, message: IncomingMessage) -> SubmitResult | Refusal:
        """A message not addressed to the bot: remembered if its thread has an agent, else ignored. Outside the
        allowed channels it is ignored without a word (someone else's conversation), whoever wrote it."""
        if self._gate is not None and not self._gate.channel_allowed(message):
            return Refusal(NOT_ALLOWED, None)
        return await self._submit(message, TaskKind.NOTE, message.text)

    async def reset(self, task: Task) -> ResetResult:
        """Reset the task's thread now, cancelling its work and its schedules; the task itself then tells the
        thread."""
        result = await self._queue.reset(task)
        await self._cancel_schedules(task.thread, "reset")
        return result

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
            # Only an answer may search Slack; other tasks keep no credential they will never use.
            action_token=message.action_token if kind is TaskKind.ANSWER else None,
        )
        try:
            if kind is TaskKind.RESET:
                result = (await self.reset(task)).outcome
            else:
                result = await self._queue.submit(task)
        except REDIS_FAILURES:
            metrics.REDIS_ERRORS.labels(where="intake").inc()
            raise  # Slack is answered 500 and delivers the event again
        if result is SubmitResult.DUPLICATE:
            log.info("event %s was delivered again; already recorded", message.event_id)
        self._crash.reached("intake.recorded")
        return result
