"""The small tasks beside answers: remember a note, greet, report the agent's status, and post a notice."""

from __future__ import annotations

from bot.agent.context import NOTE_MAX_CHARS, cut_to
from bot.core.ports import SlackGateway
from bot.tasks.attachments import read_attachments
from bot.tasks.budgets import BudgetGuard
from bot.tasks.fitting import ContextFitter
from bot.tasks.people import People
from bot.tasks.reply import GuardedSlack
from bot.tasks.schedule_text import schedules_text
from bot.tasks.status import describe_state
from store.journal import TaskJournal
from store.models import Task, TaskStatus
from store.schedules import ScheduleStore
from store.tasks import ThreadLease
from store.threads import ThreadStore

GREETING = (
    "Hi! Mention me with a question or a task and I will answer here, remembering this thread. "
    "`@me status` shows what I know of it; `@me reset` makes me forget it."
)


class NoteKeeper:
    """Remembers a message not addressed to the bot (TaskKind.NOTE): a turn of context for the next answer."""

    def __init__(
        self,
        *,
        journal: TaskJournal,
        threads: ThreadStore,
        slack: SlackGateway,
        people: People,
        fitter: ContextFitter,
        budgets: BudgetGuard | None = None,
    ) -> None:
        self._journal = journal
        self._threads = threads
        self._slack = slack
        self._people = people
        self._fitter = fitter
        self._budgets = budgets  # a fold's summary counts against the note's author, as an answer's against its asker

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Add the note to the window (not counted as a task).

        A window it takes over the budget is folded now, as after an answer, so that the notes of a busy thread
        never pile up unsummarized until the next mention (whose fold would then have to take them all at once).
        """
        files = (await read_attachments(task.files, self._slack, task.thread.team_id, with_images=False)).text
        turn = await self._people.user_turn(task, cut_to(files, NOTE_MAX_CHARS, "shared files") if files else "")
        state, history = await self._threads.agent(task.thread)
        steps = await self._journal.steps(task, attempt=attempt)
        fold, usage = await self._fitter.fold(lease, task, steps, state.summary if state else "", [*history, turn])
        if self._budgets is not None and usage.cost_microusd:
            await self._budgets.add(task, usage)
        await self._journal.finish(
            lease, task, TaskStatus.DONE, turns=[turn], usage=usage, counts_as_task=False, fold=fold
        )


class Greeter:
    """Says what the bot can do (TaskKind.GREET: a mention with nothing else in it)."""

    def __init__(self, journal: TaskJournal, slack: SlackGateway) -> None:
        self._journal = journal
        self._slack = slack

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Post the greeting in the thread."""
        await self._slack.post_reply(task.thread, GREETING)  # unchecked: journal.start took the lease a moment ago
        await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)


class StatusReporter:
    """Answers `@bot status` (TaskKind.STATUS) with what the agent knows of its thread, and its schedules."""

    def __init__(
        self, journal: TaskJournal, threads: ThreadStore, slack: SlackGateway, schedules: ScheduleStore | None = None
    ) -> None:
        self._journal = journal
        self._threads = threads
        self._slack = slack
        self._schedules = schedules

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Post the agent's state in the thread, with its scheduled follow-ups if it has any."""
        guarded = GuardedSlack(self._slack, self._journal, lease, task.thread)
        text = describe_state(await self._threads.state(task.thread))
        found = await self._schedules.list_thread(task.thread) if self._schedules else []
        if found:
            text += "\n" + schedules_text(found)
        await guarded.post_reply(text)
        await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)


class NoticePoster:
    """Posts a notice intake decided on (TaskKind.NOTICE: a refusal, its text the task's), with no model call.

    Queued like any task, so that it is deduplicated by the event's id and survives a crash; it leaves no turn and
    makes no agent: a refused message is not part of the conversation.
    """

    def __init__(self, journal: TaskJournal, slack: SlackGateway) -> None:
        self._journal = journal
        self._slack = slack

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Post the notice in the thread."""
        guarded = GuardedSlack(self._slack, self._journal, lease, task.thread)
        await guarded.post_reply(task.text)
        await self._journal.finish(lease, task, TaskStatus.DONE, counts_as_task=False)
