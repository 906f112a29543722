"""Who said what: a message as the agent's turn, named for its author, and a thread's earlier messages.

Names come from users.info once per person and are cached in Redis (store/threads.py), so that a busy thread
does not look its people up again for every message, and for a few minutes in the process too, so that a
person's every message does not cost a Redis read either (a renamed person shows the new name minutes later).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import replace

from bot.agent.context import NOTE_MAX_CHARS, cut_sentence, cut_to
from bot.agent.messages import turns_from_thread
from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from store.models import Task, Turn
from store.threads import ThreadStore

log = logging.getLogger(__name__)

# A thread the bot joins late: its newest messages before the mention become the first turns (each cut like a
# note). More would not fit the window anyway; read_thread reads further back when the conversation needs it.
EARLIER_MESSAGES = 100
NAMES_KEPT = 10_000  # names kept in the process, the least recently used dropped first
NAME_SECONDS = 300.0  # how long the process trusts a name it read


def cut_note(task: Task) -> str:
    """What to say of a message intake cut to MAX_INPUT_CHARS."""
    return cut_sentence(task.original_chars, len(task.text))


class People:
    """The turns people's messages become, with their names."""

    def __init__(self, threads: ThreadStore, slack: SlackGateway) -> None:
        self._threads = threads
        self._slack = slack
        self._names: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    async def user_turn(self, task: Task, files_text: str = "") -> Turn:
        """The task's message as a user turn: its text (with a note if intake cut it) and its files' text."""
        name = await self.name(task.thread.team_id, task.user_id)
        text = f"{task.text}\n\n[{cut_note(task)}]" if task.original_chars else task.text
        text = f"{text}\n\n{files_text}".strip() if files_text else text
        return Turn("user", text, user_id=task.user_id, user_name=name, ts=task.message_ts)

    async def earlier_turns(self, task: Task) -> list[Turn]:
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
        bot_user_id = await self._slack.bot_user_id(ref.team_id)
        names: dict[str, str] = {}
        asked: set[str] = set()  # once each: a user without a name is not looked up again for every message
        for message in messages:
            if message.user_id and message.user_id not in asked and not message.from_this_bot:
                asked.add(message.user_id)
                name = await self.name(ref.team_id, message.user_id)
                if name:
                    names[message.user_id] = name
        turns = turns_from_thread(messages, before_ts=task.message_ts, bot_user_id=bot_user_id, names=names)
        return [replace(turn, text=cut_to(turn.text, NOTE_MAX_CHARS)) for turn in turns]

    async def name(self, team_id: str, user_id: str) -> str | None:
        """The user's display name: cached, or asked of Slack (and cached when there is one)."""
        key = (team_id, user_id)
        kept = self._names.get(key)
        if kept is not None and time.monotonic() - kept[0] < NAME_SECONDS:
            self._names.move_to_end(key)
            return kept[1]
        name = await self._threads.cached_user_name(team_id, user_id)
        if name is None:
            name = await self._slack.display_name(team_id, user_id)
            if name:
                await self._threads.remember_user_name(team_id, user_id, name)
        if name:
            self._names[key] = (time.monotonic(), name)
            self._names.move_to_end(key)
            while len(self._names) > NAMES_KEPT:
                self._names.popitem(last=False)
        return name
