"""Answering a mention: fit the thread into the context, run the tool loop, deliver the answer, fold the window.

Every step is safe to run again: a task interrupted anywhere (a crash, a restart) runs again from the top, replays
its journal instead of calling Claude again, finds its reply message, and finishes with one visible answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from bot.agent.context import Context
from bot.agent.loop import AgentLoop, LoopResult
from bot.agent.setup import AgentSetup, for_model, journaled_setup, with_setup
from bot.agent.steps import ModelStep, answer_so_far, loop_steps, parse_steps, total_usage
from bot.core import metrics
from bot.core.errors import ModelError, ModelRefused, OverBudget
from bot.core.faults import CrashPoints
from bot.core.ports import SlackGateway
from bot.tasks.attachments import Attachments, read_attachments, unread_note
from bot.tasks.budgets import BudgetGuard
from bot.tasks.channel_setup import ChannelSetups
from bot.tasks.fitting import ContextFitter, with_images
from bot.tasks.people import People, cut_note
from bot.tasks.reply import ReplyMessage
from bot.tasks.session_title import title_from_question
from bot.tasks.split import PART_CHARS
from bot.tasks.stopping import RunningAnswers
from store.connection import REDIS_FAILURES
from store.errors import LeaseLost, TaskStopped
from store.journal import TaskJournal
from store.models import Task, TaskStatus, Turn
from store.tasks import ThreadLease
from store.threads import ThreadStore
from store.titles import SessionTitles

log = logging.getLogger(__name__)

# A long answer goes out in parts of at most PART_CHARS (bot/tasks/split.py); past this many, it is cut with a note.
MAX_REPLY_CHARS = 20 * PART_CHARS


def reply_text(answer: str, task: Task, attachments: Attachments) -> str:
    """The answer as posted: cut if too long, with notes on a cut question and on the files Claude did not get."""
    text = answer
    if len(text) > MAX_REPLY_CHARS:
        text = text[:MAX_REPLY_CHARS] + "\n\n_(Cut here: the answer was longer than I post in one reply.)_"
    if task.original_chars:
        text += f"\n\n_({cut_note(task)})_"
    return text + unread_note(attachments)  # files Claude did not get are named, whatever Claude says of them


class Answerer:
    """Answers a mention (TaskKind.ANSWER) in its thread's one reply message."""

    def __init__(
        self,
        *,
        journal: TaskJournal,
        threads: ThreadStore,
        loop: AgentLoop,
        slack: SlackGateway,
        crash: CrashPoints,
        fitter: ContextFitter,
        people: People,
        titles: SessionTitles | None = None,
        running: RunningAnswers,
        budgets: BudgetGuard | None = None,
        setups: ChannelSetups | None = None,
    ) -> None:
        self._journal = journal
        self._threads = threads
        self._loop = loop
        self._slack = slack
        self._crash = crash
        self._fitter = fitter
        self._people = people
        self._titles = titles
        self._running = running
        self._budgets = budgets
        self._setups = setups

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Answer the mention, showing work in progress on it meanwhile."""
        reply = ReplyMessage(self._slack, self._journal, lease, task)
        await self._slack.set_working(task.thread, task.message_ts, True, user_id=task.user_id)
        still_ours = True
        try:
            await self._answer(lease, task, reply, resumed=attempt > 1)
        except REDIS_FAILURES:
            await reply.tell_waiting_for_redis()  # the runner waits for Redis, then runs this again
            raise
        except LeaseLost:
            still_ours = False  # another worker runs the task now, and shows that it works: leave that alone
            raise
        finally:  # done, failed, cancelled or stopped: the mention no longer shows work in progress
            if still_ours:
                await self._slack.set_working(task.thread, task.message_ts, False, user_id=task.user_id)

    async def _title_session(self, task: Task) -> None:
        """A DM thread's session is titled once, from its first question (a title a person gave it is kept); the
        session exists by now (setting its status made it)."""
        title = title_from_question(task.text)
        if self._titles is None or not task.thread.channel_id.startswith("D") or not title:
            return
        if await self._titles.claim_title(task.thread, task.task_id):
            await self._slack.rename_session(task.thread, title)

    async def _answer(self, lease: ThreadLease, task: Task, reply: ReplyMessage, *, resumed: bool) -> None:
        ref = task.thread
        steps = await self._journal.steps(task, attempt=2 if resumed else 1)
        answered = self._loop.holds_answer(steps)
        reply_ts = await reply.open(resumed=resumed, answered=answered)
        await self._title_session(task)
        if self._budgets is not None and not answered and (refusal := await self._budgets.refusal(task)):
            await self._over_budget(lease, task, reply, refusal, turns=[await self._people.user_turn(task)])
            return
        setup, unjournaled = await self._setup(task, steps)
        state, history = await self._threads.agent(ref)
        summary = state.summary if state else ""
        earlier = await self._people.earlier_turns(task) if not history and not summary else []
        attachments = await read_attachments(task.files, self._slack, ref.team_id)
        question = await self._people.user_turn(task, attachments.text)
        context = await self._fitter.fitted_context(
            summary, [*history, *earlier], question, resumed=resumed, setup=setup
        )
        if attachments.images:
            context = with_images(context, attachments.images)
        try:
            result = await self._run_loop(lease, task, reply, context, steps, setup, unjournaled, timed=not resumed)
        except ModelError as exc:
            await self._model_failed(lease, task, reply, exc, turns=[*earlier, question])
            return
        except TaskStopped as stop:
            await self._stopped(lease, task, reply, stop, turns=[*earlier, question], reply_ts=reply_ts)
            return
        except OverBudget as over:
            await self._over_budget(lease, task, reply, over.message, turns=[*earlier, question], reply_ts=reply_ts)
            return
        if result.first_call_input_tokens is not None and not attachments.images:  # images are not text to learn from
            self._fitter.observe(context.estimated_tokens, result.first_call_input_tokens)
        self._crash.reached("answer.journaled")
        text = reply_text(result.text, task, attachments)
        await reply.deliver(text, resumed=resumed)
        if not resumed:  # a resumed answer's times measure the crash, not the bot: they would swamp the histograms
            metrics.ANSWER_SECONDS.observe(metrics.since(task.created_at))
        self._crash.reached("reply.posted")
        new_turns = [*earlier, question, Turn("assistant", text, ts=reply_ts)]
        fold, fold_usage = await self._fitter.fold(lease, task, steps, summary, [*history, *new_turns], setup)
        usage = result.usage + fold_usage
        if self._budgets is not None and fold_usage.cost_microusd:
            await self._budgets.add(task, fold_usage)  # (the answer's own calls were held and settled one by one)
        await self._journal.finish(lease, task, TaskStatus.DONE, turns=new_turns, usage=usage, fold=fold)

    async def _setup(self, task: Task, steps: list[dict[str, Any]]) -> tuple[AgentSetup, bool]:
        """The channel setup the task runs with, and whether it is still to be journaled: the one it journaled, else
        its channel's now. A new one is journaled with the task's first model call (in the same write: one script
        less per answer), so a resumed task that made a call keeps it whatever the channel changed meanwhile; one
        that made none has nothing to keep consistent, and reads its channel's again."""
        if (journaled := journaled_setup(steps)) is not None:
            return journaled, False
        if self._setups is None:
            return AgentSetup(thinking=self._loop.thinking), False
        setup = replace(await self._setups.for_task(task), thinking=self._loop.thinking)
        return for_model(setup, self._loop.model(setup)), True

    async def _model_failed(
        self, lease: ThreadLease, task: Task, reply: ReplyMessage, exc: ModelError, *, turns: list[Turn]
    ) -> None:
        """Claude refused, or failed for good: say so in plain words and end the task (its question is kept)."""
        if isinstance(exc, ModelRefused):
            await reply.show("I can't help with that request.")
            await self._journal.finish(lease, task, TaskStatus.DONE, turns=turns)
            return
        # The details (status, request id) go to the log and the task record; the thread gets plain words.
        log.warning("task %s: model call failed: %s", task.task_id, exc)
        await reply.show(f":warning: {exc.user_message}")
        await self._journal.finish(lease, task, TaskStatus.FAILED, turns=turns, error=str(exc))

    async def _over_budget(
        self,
        lease: ThreadLease,
        task: Task,
        reply: ReplyMessage,
        message: str,
        *,
        turns: list[Turn],
        reply_ts: str | None = None,
    ) -> None:
        """A budget is used up: the answer ends with what its calls had written and the budget's message (alone, when
        it made none: the mention is refused, and counted so); the history keeps the question and that."""
        steps = parse_steps(await self._journal.steps(task, attempt=2))
        if not any(isinstance(step, ModelStep) for step in steps):
            metrics.MENTIONS.labels(outcome="refused", reason="budget").inc()
            await reply.show(message)
            await self._journal.finish(lease, task, TaskStatus.DONE, turns=turns)
            return
        written = answer_so_far(loop_steps(steps)).strip()
        text = f"{written}\n\n_{message}_" if written else message
        await reply.deliver(text, resumed=False)
        answer = [Turn("assistant", text, ts=reply_ts)] if reply_ts else []
        await self._journal.finish(lease, task, TaskStatus.DONE, turns=[*turns, *answer], usage=total_usage(steps))

    async def _stopped(
        self,
        lease: ThreadLease,
        task: Task,
        reply: ReplyMessage,
        stop: TaskStopped,
        *,
        turns: list[Turn],
        reply_ts: str,
    ) -> None:
        """A person stopped the answer: what it had shown stays, marked as stopped by them, and the history keeps the
        question and that partial answer; the thread's next task runs next."""
        log.info("task %s: stopped by %s", task.task_id, stop.by)
        text = await reply.stopped(stop.by)
        usage = total_usage(parse_steps(await self._journal.steps(task, attempt=2)))  # the calls it had made
        answer = Turn("assistant", text, ts=reply_ts)
        await self._journal.finish(lease, task, TaskStatus.STOPPED, turns=[*turns, answer], usage=usage)

    async def _run_loop(
        self,
        lease: ThreadLease,
        task: Task,
        reply: ReplyMessage,
        context: Context,
        steps: list[dict[str, Any]],
        setup: AgentSetup,
        unjournaled: bool = False,
        *,
        timed: bool = False,
    ) -> LoopResult:
        """The tool loop from the journal so far, each new step journaled, the answer shown as it streams in.

        The loop runs as a task of its own, registered in RunningAnswers: a stop cancels it (the model's stream is
        closed, no further call is made). A stop this process did not hear of is met at the loop's next journaled
        step. Either way TaskStopped is raised, with the text shown so far. `timed`: the first words shown are timed
        for the metrics (a first attempt's)."""
        shown = ""

        first = unjournaled

        async def record(step: dict[str, Any]) -> None:
            nonlocal first
            if first:  # the setup goes with the task's first model call
                step = with_setup(step, setup)
            await self._journal.record_step(lease, task, step, stoppable=True)
            first = False

        live = reply.live()

        first_text = timed

        async def on_text(text: str) -> None:
            nonlocal shown, first_text
            shown = text
            if first_text and text.strip():
                first_text = False
                metrics.FIRST_TEXT_SECONDS.observe(metrics.since(task.created_at))
            await live.show(text)

        key = task.thread.encode()
        loop = asyncio.create_task(
            self._loop.run(
                context.system,
                context.messages,
                steps,
                record,
                task,
                on_text=on_text,
                on_retry=live.retrying,
                on_progress=live.progress,
                guard=self._budgets.for_task(task) if self._budgets is not None else None,
                setup=setup,
                lease=lease,
            ),
            name=f"answer-{task.task_id}",
        )
        try:
            with self._running.running(key, task.task_id, loop):
                try:
                    return await loop  # (cancelling this coroutine cancels the loop too: a shutdown, a lost lease)
                except asyncio.CancelledError:
                    by = self._running.stopped_by(key, task.task_id)
                    current = asyncio.current_task()
                    if by is None or (current is not None and current.cancelling()):
                        raise  # not a stop: this coroutine itself was cancelled
                    raise TaskStopped(by, shown) from None
                except TaskStopped as stop:
                    raise TaskStopped(stop.by, shown) from None
        finally:
            await live.settle()  # no preview may land after what is posted next
