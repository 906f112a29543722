"""Executing one task: answer a mention, remember a note, report status, or reset the agent.

Every step is safe to run again: a task interrupted anywhere (a crash, a restart) is executed again from the
top, finds its journal, its reply message and its status in Redis, and finishes with one visible reply.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import RedisError

from bot.agent.compaction import Compactor
from bot.agent.context import NOTE_MAX_CHARS, Budget, Context, TokenEstimator, assemble, cut_sentence, cut_to
from bot.agent.loop import AgentLoop
from bot.agent.messages import speaker_label, turns_from_thread
from bot.agent.steps import holds_answer
from bot.core.errors import ModelError, ModelRefused, SlackError
from bot.core.faults import CrashPoints
from bot.core.ports import SlackGateway
from bot.tasks.attachments import IMAGE_TOKENS, read_attachments, unread_note
from bot.tasks.live import LiveReply
from bot.tasks.split import PART_CHARS, split_markdown
from bot.tasks.status import describe_state
from store.errors import LeaseLost
from store.journal import Fold, TaskJournal
from store.models import Task, TaskKind, TaskStatus, Turn, Usage
from store.tasks import ThreadLease
from store.threads import ThreadStore

log = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"
RESUMED_PLACEHOLDER = ":arrows_counterclockwise: I was restarted while working on this; picking it up again…"
START_AFRESH = "Mention me to start afresh."
WAITING_FOR_REDIS = (
    ":hourglass_flowing_sand: My memory (Redis) cannot be reached right now. I will finish this answer as soon "
    "as it is back; nothing is lost."
)
GREETING = (
    "Hi! Mention me with a question or a task and I will answer here, remembering this thread. "
    "`@me status` shows what I know of it; `@me reset` makes me forget it."
)
# Within this share of the budget an estimate is not trusted: the count_tokens endpoint gives the exact figure.
NEAR_EDGE = 0.1
# A long answer goes out in parts of at most PART_CHARS (bot/tasks/split.py); past this many, it is cut with a note.
MAX_REPLY_CHARS = 20 * PART_CHARS
# A thread the bot joins late: its newest messages before the mention become the first turns (each cut like a
# note). More would not fit the window anyway; read_thread reads further back when the conversation needs it.
EARLIER_MESSAGES = 100


def with_images(context: Context, images: list[dict[str, Any]]) -> Context:
    """The context with the new message's images at the start of its (last) user message."""
    messages = [*context.messages[:-1], {**context.messages[-1]}]
    messages[-1]["content"] = [*images, *messages[-1]["content"]]
    estimated = context.estimated_tokens + IMAGE_TOKENS * len(images)
    return Context(context.system, messages, estimated, context.omitted_turns)


def cut_note(task: Task) -> str:
    """What to say of a message intake cut to MAX_INPUT_CHARS."""
    return cut_sentence(task.original_chars, len(task.text))


@dataclass(frozen=True)
class ExecutorSettings:
    """The parts of the configuration the executor needs."""

    max_attempts: int = 3


@dataclass(frozen=True)
class ContextSettings:
    """How answers' contexts are assembled."""

    system_prompt: str
    budget: Budget
    estimator: TokenEstimator


class TaskExecutor:
    """Runs one task to its end; safe to run again on a task that was interrupted."""

    def __init__(
        self,
        *,
        journal: TaskJournal,
        threads: ThreadStore,
        loop: AgentLoop,
        compactor: Compactor,
        slack: SlackGateway,
        crash: CrashPoints,
        settings: ExecutorSettings,
        context: ContextSettings,
    ) -> None:
        self._journal = journal
        self._threads = threads
        self._loop = loop
        self._compactor = compactor
        self._context_settings = context
        self._slack = slack
        self._crash = crash
        self._settings = settings
        self._reply_ts: dict[str, str] = {}  # the reply message of each answer being worked on here

    async def execute(self, lease: ThreadLease, task: Task) -> None:
        """Run the task; one that has used up its attempts is failed with a message in its thread."""
        attempt = await self._journal.start(lease, task)
        if attempt > self._settings.max_attempts:
            await self._give_up(lease, task, task.error or f"it failed {attempt - 1} times")
        elif task.kind is TaskKind.ANSWER:
            await self._slack.set_working(task.thread, task.message_ts, True)
            try:
                await self._answer(lease, task, resumed=attempt > 1)
            except RedisError:
                await self._tell_waiting_for_redis(task)  # the runner waits for Redis, then runs this again
                raise
            finally:  # done, failed, cancelled or stopped: the mention no longer shows work in progress
                self._reply_ts.pop(task.task_id, None)
                await self._slack.set_working(task.thread, task.message_ts, False)
        elif task.kind is TaskKind.NOTE:
            await self._remember_note(lease, task)
        elif task.kind is TaskKind.GREET:
            await self._slack.post_reply(task.thread, GREETING)
            await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)
        elif task.kind is TaskKind.STATUS:
            await self._journal.check_lease(lease)
            await self._slack.post_reply(task.thread, describe_state(await self._threads.state(task.thread)))
            await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)
        else:
            await self._announce_reset(lease, task)

    async def _answer(self, lease: ThreadLease, task: Task, *, resumed: bool) -> None:
        ref = task.thread
        steps = await self._journal.steps(task)
        answered = holds_answer(steps)
        reply_ts = await self._reply_message(lease, task, resumed=resumed, answered=answered)
        self._reply_ts[task.task_id] = reply_ts
        state = await self._threads.state(ref)
        summary = state.summary if state else ""
        history = await self._threads.turns(ref)
        earlier = await self._earlier_messages(task) if not history and not summary else []
        attachments = await read_attachments(task.files, self._slack)
        question = await self._user_turn(task, attachments.text)
        context = await self._fitted_context(summary, [*history, *earlier], question, resumed=resumed)
        if attachments.images:
            context = with_images(context, attachments.images)

        async def record(step: dict[str, Any]) -> None:
            await self._journal.record_step(lease, task, step)

        live = LiveReply(self._slack, ref, reply_ts, guard=lambda: self._journal.check_lease(lease))
        try:
            try:
                result = await self._loop.run(
                    context.system, context.messages, steps, record, ref, on_text=live.show, on_retry=live.retrying
                )
            finally:
                await live.settle()  # no preview may land after what is posted next
        except ModelRefused:
            await self._journal.check_lease(lease)  # reset meanwhile: its message is gone, say nothing
            await self._slack.update_message(ref, reply_ts, "I can't help with that request.")
            await self._journal.finish(lease, task, TaskStatus.DONE, turns=[*earlier, question])
            return
        except ModelError as exc:
            # The details (status, request id) go to the log and the task record; the thread gets plain words.
            log.warning("task %s: model call failed: %s", task.task_id, exc)
            await self._journal.check_lease(lease)
            await self._slack.update_message(ref, reply_ts, f":warning: {exc.user_message}")
            await self._journal.finish(lease, task, TaskStatus.FAILED, turns=[*earlier, question], error=str(exc))
            return
        if result.first_call_input_tokens is not None and not attachments.images:  # images are not text to learn from
            self._context_settings.estimator.observe(context.estimated_tokens, result.first_call_input_tokens)
        self._crash.reached("answer.journaled")
        text = result.text
        if len(text) > MAX_REPLY_CHARS:
            text = text[:MAX_REPLY_CHARS] + "\n\n_(Cut here: the answer was longer than I post in one reply.)_"
        if task.original_chars:
            text += f"\n\n_({cut_note(task)})_"
        text += unread_note(attachments)  # files Claude did not get are named, whatever Claude says of them
        await self._deliver(lease, task, reply_ts, text, resumed=resumed)
        self._crash.reached("reply.posted")
        new_turns = [*earlier, question, Turn("assistant", text, ts=reply_ts)]
        fold, fold_usage = await self._fold(lease, task, steps, summary, [*history, *new_turns])
        usage = result.usage + fold_usage
        await self._journal.finish(lease, task, TaskStatus.DONE, turns=new_turns, usage=usage, fold=fold)

    async def _remember_note(self, lease: ThreadLease, task: Task) -> None:
        """A message not addressed to the bot: a turn of context for the next answer (not counted as a task).

        A window it takes over the budget is folded now, as after an answer, so that the notes of a busy thread
        never pile up unsummarized until the next mention (whose fold would then have to take them all at once).
        """
        files = (await read_attachments(task.files, self._slack, with_images=False)).text
        turn = await self._user_turn(task, cut_to(files, NOTE_MAX_CHARS, "shared files") if files else "")
        state = await self._threads.state(task.thread)
        history = await self._threads.turns(task.thread)
        steps = await self._journal.steps(task)
        fold, usage = await self._fold(lease, task, steps, state.summary if state else "", [*history, turn])
        await self._journal.finish(
            lease, task, TaskStatus.DONE, turns=[turn], usage=usage, counts_as_task=False, fold=fold
        )

    async def _fold(
        self, lease: ThreadLease, task: Task, steps: list[dict[str, Any]], summary: str, window: list[Turn]
    ) -> tuple[Fold | None, Usage]:
        """Fold the window's oldest turns into the summary if it is over the budget (journaled, step by step)."""

        async def record(step: dict[str, Any]) -> None:
            await self._journal.record_step(lease, task, step)

        fold, usage = await self._compactor.fold_if_needed(
            steps, summary, window, record, fixed_tokens=self._fixed_tokens()
        )
        if fold is not None:
            self._crash.reached("summary.journaled")
        return fold, usage

    async def _deliver(self, lease: ThreadLease, task: Task, reply_ts: str, text: str, *, resumed: bool) -> None:
        """Put the answer in its message, and a long one's further parts after it, each exactly once.

        The parts come from the journaled answer, so a resumed task cuts them the same way: a part already
        posted (recorded, or found by its metadata after a crash) is updated in place, never posted again.
        """
        parts = split_markdown(text)
        await self._journal.check_lease(lease)  # a reset (or a takeover) since the last write: post nothing
        await self._slack.update_message(task.thread, reply_ts, parts[0])
        posted = await self._journal.reply_parts(task) if len(parts) > 1 else {}
        for index, part in enumerate(parts[1:], start=1):
            ts = posted.get(index)
            if ts is None and resumed:
                ts = await self._slack.find_task_message(task.thread, task.task_id, after_ts=reply_ts, part=index)
            if ts is not None:
                await self._slack.update_message(task.thread, ts, part)
            else:
                await self._journal.check_lease(lease)
                ts = await self._slack.post_part(task.thread, part, task.task_id, index)
            if posted.get(index) != ts:
                await self._journal.set_reply_ts(lease, task, ts, part=index)

    async def _announce_reset(self, lease: ThreadLease, task: Task) -> None:
        """A reset (the agent was cleared when it was recorded): remove cancelled answers' messages, tell the thread."""
        cleanup = await self._journal.reset_cleanup(task)
        if cleanup is None:  # queued by an older release, which cleared the agent only when the reset ran
            await self._journal.finish(lease, task, TaskStatus.DONE, clear_agent=True)
        else:
            leftovers = list(cleanup.reply_ts)
            for task_id in cleanup.unrecorded_task_ids:  # a crash came between posting and recording
                found = await self._slack.find_task_message(task.thread, task_id, after_ts=task.message_ts)
                leftovers += [found] if found else []
            for reply_ts in leftovers:
                try:
                    await self._slack.delete_message(task.thread, reply_ts)
                except SlackError as exc:  # a leftover "Thinking…" is untidy, not worth failing the reset for
                    log.warning("task %s: could not remove a cancelled answer's message: %s", task.task_id, exc)
        note = f"<@{task.user_id}> reset this thread's agent: I have forgotten what was said here. {START_AFRESH}"
        await self._journal.check_lease(lease)  # a second reset since: that one tells the thread
        await self._slack.post_reset_note(task.thread, note, reset_at=task.created_at)
        if cleanup is not None:
            await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)

    def _fixed_tokens(self) -> int:
        """Tokens every request carries besides system, summary and turns: the tool definitions."""
        estimator = self._context_settings.estimator
        return sum(estimator.text(json.dumps(tool)) for tool in self._loop.tool_definitions)

    async def _fitted_context(self, summary: str, window: list[Turn], question: Turn, *, resumed: bool) -> Context:
        """The context; near the budget's edge an exact count from the API recalibrates the estimate first."""
        context = self._context(summary, window, question, resumed=resumed)
        budget = self._context_settings.budget.total
        if abs(context.estimated_tokens - budget) > budget * NEAR_EDGE:
            return context
        try:
            exact = await self._loop.count_tokens(context.system, context.messages)
        except ModelError as exc:
            log.info("token count unavailable (%s); going by the estimate", exc)
            return context
        self._context_settings.estimator.observe(context.estimated_tokens, exact)
        return self._context(summary, window, question, resumed=resumed)

    def _context(self, summary: str, window: list[Turn], question: Turn, *, resumed: bool) -> Context:
        settings = self._context_settings
        pinned = f"[Agent state, not from the user: answering the latest message from {speaker_label(question)}."
        pinned += " This task was interrupted and has resumed.]" if resumed else "]"
        return assemble(
            system_prompt=settings.system_prompt,
            summary=summary,
            window=window,
            new_turns=[question],
            pinned=pinned,
            budget=settings.budget,
            estimator=settings.estimator,
            fixed_tokens=self._fixed_tokens(),
        )

    async def _reply_message(self, lease: ThreadLease, task: Task, *, resumed: bool, answered: bool) -> str:
        """The one message that carries this task's answer: recorded, found again by its metadata, or new."""
        reply_ts = task.reply_ts
        if reply_ts is None and resumed:
            # A crash between posting the placeholder and recording its ts: the message says whose it is.
            reply_ts = await self._slack.find_task_message(task.thread, task.task_id, after_ts=task.message_ts)
            if reply_ts is not None:
                await self._record_reply(lease, task, reply_ts)
        if reply_ts is None:
            text = RESUMED_PLACEHOLDER if resumed else PLACEHOLDER
            reply_ts = await self._slack.post_placeholder(task.thread, text, task.task_id)
            await self._record_reply(lease, task, reply_ts)
        elif resumed and not answered:
            await self._slack.update_message(task.thread, reply_ts, RESUMED_PLACEHOLDER)
        return reply_ts

    async def _record_reply(self, lease: ThreadLease, task: Task, reply_ts: str) -> None:
        """Record the task's message; if a reset cancelled the task meanwhile, remove the message instead."""
        try:
            await self._journal.set_reply_ts(lease, task, reply_ts)
        except LeaseLost:
            if await self._journal.cancelled(task):  # the reset could not know this message: nobody will finish it
                await self._slack.delete_message(task.thread, reply_ts)
            raise

    async def _earlier_messages(self, task: Task) -> list[Turn]:
        """A thread the bot joins late: what people said in it before the mention."""
        ref = task.thread
        if not ref.thread_ts or ref.thread_ts == task.message_ts:
            return []
        try:
            tail = await self._slack.recent_messages(ref, limit=EARLIER_MESSAGES, before_ts=task.message_ts)
        except SlackError as exc:
            # Worth answering without them rather than not at all (a missing scope, a deleted parent...).
            log.warning("task %s: cannot read the earlier messages of its thread: %s", task.task_id, exc)
            return []
        messages = tail.messages
        bot_user_id = await self._slack.bot_user_id()
        names: dict[str, str] = {}
        asked: set[str] = set()  # once each: a user without a name is not looked up again for every message
        for message in messages:
            if message.user_id and message.user_id not in asked and not message.from_this_bot:
                asked.add(message.user_id)
                name = await self._name(ref.team_id, message.user_id)
                if name:
                    names[message.user_id] = name
        turns = turns_from_thread(messages, before_ts=task.message_ts, bot_user_id=bot_user_id, names=names)
        return [replace(turn, text=cut_to(turn.text, NOTE_MAX_CHARS)) for turn in turns]

    async def _user_turn(self, task: Task, files_text: str = "") -> Turn:
        name = await self._name(task.thread.team_id, task.user_id)
        text = f"{task.text}\n\n[{cut_note(task)}]" if task.original_chars else task.text
        text = f"{text}\n\n{files_text}".strip() if files_text else text
        return Turn("user", text, user_id=task.user_id, user_name=name, ts=task.message_ts)

    async def _name(self, team_id: str, user_id: str) -> str | None:
        cached = await self._threads.cached_user_name(team_id, user_id)
        if cached is not None:
            return cached
        name = await self._slack.display_name(team_id, user_id)
        if name:
            await self._threads.remember_user_name(team_id, user_id, name)
        return name

    async def _tell_waiting_for_redis(self, task: Task) -> None:
        """Tell the thread why its answer is late: the bot's storage is unreachable (the answer follows later)."""
        reply_ts = self._reply_ts.get(task.task_id) or task.reply_ts
        if reply_ts:
            try:
                await self._slack.update_message(task.thread, reply_ts, WAITING_FOR_REDIS)
            except SlackError as exc:
                log.info("task %s: could not say it is waiting for Redis: %s", task.task_id, exc)

    async def _give_up(self, lease: ThreadLease, task: Task, reason: str) -> None:
        log.error("task %s failed for good: %s", task.task_id, reason)
        why = reason[:1].upper() + reason[1:]
        message = f":warning: Sorry, I could not finish this request. {why}. Mention me again to retry."
        try:
            if task.reply_ts:
                await self._slack.update_message(task.thread, task.reply_ts, message)
            elif task.kind is TaskKind.ANSWER:
                await self._slack.post_reply(task.thread, message)
        except SlackError as exc:
            # Telling the thread is best effort: the task is failed either way, so it cannot block its thread.
            log.warning("task %s: could not post the failure message: %s", task.task_id, exc)
        await self._journal.finish(lease, task, TaskStatus.FAILED, error=reason)
