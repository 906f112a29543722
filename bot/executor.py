"""Executing one task: answer a mention, remember a note, report status, or reset the agent."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bot.agent import build_messages, turns_from_thread
from bot.errors import ModelError, ModelRefused, SlackError
from bot.llm import ClaudeClient
from bot.ports import SlackGateway
from store.models import AgentState, Task, TaskKind, TaskStatus, Turn, Usage
from store.tasks import TaskQueue
from store.threads import ThreadStore

log = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"
RESUMED_PLACEHOLDER = ":arrows_counterclockwise: I was restarted while working on this; picking it up again…"
# Slack cuts a message's text at 40,000 characters; leave room for the note that says so.
MAX_REPLY_CHARS = 39_000


@dataclass(frozen=True)
class ExecutorSettings:
    """The parts of the configuration the executor needs."""

    system_prompt: str
    max_attempts: int = 3


class TaskExecutor:
    """Runs one task to its end; safe to run again on a task that was interrupted."""

    def __init__(
        self,
        *,
        queue: TaskQueue,
        threads: ThreadStore,
        claude: ClaudeClient,
        slack: SlackGateway,
        settings: ExecutorSettings,
    ) -> None:
        self._queue = queue
        self._threads = threads
        self._claude = claude
        self._slack = slack
        self._settings = settings

    async def execute(self, task: Task) -> None:
        """Run the task; a task that has used up its attempts is failed with a message in its thread."""
        attempt = await self._queue.mark_running(task)
        if attempt > self._settings.max_attempts:
            await self._give_up(task, f"it failed {attempt - 1} times")
            return
        if task.kind is TaskKind.ANSWER:
            await self._answer(task, resumed=attempt > 1)
        elif task.kind is TaskKind.NOTE:
            await self._note(task)
        elif task.kind is TaskKind.STATUS:
            await self._status(task)
        else:
            await self._reset(task)

    async def _answer(self, task: Task, *, resumed: bool) -> None:
        ref = task.thread
        reply_ts = task.reply_ts
        if reply_ts is None:
            reply_ts = await self._slack.post_placeholder(
                ref, RESUMED_PLACEHOLDER if resumed else PLACEHOLDER, task.task_id
            )
            await self._queue.set_reply_ts(task, reply_ts)
        elif resumed:
            await self._slack.update_message(ref, reply_ts, RESUMED_PLACEHOLDER)
        history = await self._threads.turns(ref)
        earlier = await self._earlier_messages(task) if not history else []
        question = await self._user_turn(task)
        messages = build_messages([*history, *earlier, question])
        try:
            reply = await self._claude.answer(self._settings.system_prompt, messages)
        except ModelRefused:
            await self._slack.update_message(ref, reply_ts, "I can't help with that request.")
            await self._queue.finish(task, TaskStatus.DONE, turns=[*earlier, question], usage=Usage(model_calls=1))
            return
        except ModelError as exc:
            log.warning("task %s: model call failed: %s", task.task_id, exc)
            await self._slack.update_message(
                ref, reply_ts, f":warning: Sorry, I could not answer: {exc}. Mention me again to retry."
            )
            await self._queue.finish(task, TaskStatus.FAILED, turns=[*earlier, question], error=str(exc))
            return
        text = reply.text or "(I had nothing to add.)"
        if reply.stop_reason == "max_tokens":
            text += "\n\n_(My answer was cut short: it reached the length limit.)_"
        if len(text) > MAX_REPLY_CHARS:
            text = text[:MAX_REPLY_CHARS] + "\n\n_(Cut here: Slack messages have a length limit.)_"
        await self._slack.update_message(ref, reply_ts, text)
        usage = Usage(reply.input_tokens, reply.output_tokens, model_calls=1)
        answer = Turn("assistant", text, ts=reply_ts)
        await self._queue.finish(task, TaskStatus.DONE, turns=[*earlier, question, answer], usage=usage)

    async def _earlier_messages(self, task: Task) -> list[Turn]:
        """A thread the bot joins late: what people said in it before the mention."""
        ref = task.thread
        if not ref.thread_ts or ref.thread_ts == task.message_ts:
            return []
        messages = await self._slack.thread_messages(ref)
        bot_user_id = await self._slack.bot_user_id()
        names: dict[str, str] = {}
        for message in messages:
            if message.user_id and message.user_id not in names and not message.from_this_bot:
                name = await self._name(ref.team_id, message.user_id)
                if name:
                    names[message.user_id] = name
        return turns_from_thread(messages, before_ts=task.message_ts, bot_user_id=bot_user_id, names=names)

    async def _user_turn(self, task: Task) -> Turn:
        name = await self._name(task.thread.team_id, task.user_id)
        return Turn("user", task.text, user_id=task.user_id, user_name=name, ts=task.message_ts)

    async def _name(self, team_id: str, user_id: str) -> str | None:
        cached = await self._threads.cached_user_name(team_id, user_id)
        if cached is not None:
            return cached
        name = await self._slack.display_name(team_id, user_id)
        if name:
            await self._threads.remember_user_name(team_id, user_id, name)
        return name

    async def _note(self, task: Task) -> None:
        # Remembered for the next answer; a note is context, not a request, so it is not counted as a task.
        await self._queue.finish(task, TaskStatus.DONE, turns=[await self._user_turn(task)], counts_as_task=False)

    async def _status(self, task: Task) -> None:
        state = await self._threads.state(task.thread)
        await self._slack.post_reply(task.thread, describe_state(state))
        await self._queue.finish(task, TaskStatus.DONE, counts_as_task=False)

    async def _reset(self, task: Task) -> None:
        await self._queue.finish(task, TaskStatus.DONE, clear_agent=True)
        await self._slack.post_reply(task.thread, "Done: I have forgotten this thread. Mention me to start afresh.")

    async def _give_up(self, task: Task, reason: str) -> None:
        log.error("task %s failed for good: %s", task.task_id, reason)
        message = f":warning: Sorry, I could not finish this request ({reason}). Mention me again to retry."
        try:
            if task.reply_ts:
                await self._slack.update_message(task.thread, task.reply_ts, message)
            elif task.kind is TaskKind.ANSWER:
                await self._slack.post_reply(task.thread, message)
        except SlackError as exc:
            # Telling the thread is best effort: the task is failed either way, so it cannot block its thread.
            log.warning("task %s: could not post the failure message: %s", task.task_id, exc)
        await self._queue.finish(task, TaskStatus.FAILED, error=reason)


def describe_state(state: AgentState | None) -> str:
    """The agent's state as a short Slack message."""
    if state is None:
        return "No agent here yet: mention me to start one."
    age = _ago(state.updated_at)
    lines = [
        f"*Agent status:* {state.status}, last active {age}",
        f"• Turns remembered: {state.turns}",
        f"• Tasks done: {state.tasks_done}, failed: {state.tasks_failed}",
        f"• Tokens: {state.input_tokens:,} in, {state.output_tokens:,} out, over {state.model_calls} model calls",
    ]
    if state.last_error:
        lines.append(f"• Last error: {state.last_error}")
    return "\n".join(lines)


def _ago(timestamp: float) -> str:
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"
