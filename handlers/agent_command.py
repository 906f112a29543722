"""What `/agent` (and the status and reset words) do, behind the listeners; each answer is shown only to its asker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import SlackError
from bot.core.ports import SlackGateway
from bot.tasks.admins import Admins
from bot.tasks.intake import Intake
from handlers.config_desk import ConfigDesk
from handlers.limit_views import limit_value, limits_text, spend_block
from handlers.links import thread_label
from handlers.views import channel_overview, channel_reset_question, thread_detail
from store.feedback import FeedbackStore
from store.limits import LimitStore, limit_name, parse_limit
from store.models import CHANNEL_WIDE, Task, TaskKind, ThreadRef
from store.spend import Payer, SpendStore
from store.stops import StopResult
from store.tasks import SubmitResult, TaskQueue
from store.threads import ThreadStore

RECENT_AGENTS = 10


@dataclass(frozen=True)
class Answer:
    """A reply to the person who ran the command: text (the notification and fallback) and Block Kit blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


HELP = Answer(
    "*`/agent` shows and clears this channel's thread agents.*\n"
    "• `/agent status`: the channel's agents, the queue and the workers\n"
    "• `/agent status <link to a thread>`: one thread's agent in detail\n"
    "• `/agent reset <link to a thread>`: that agent forgets everything (its work in progress is stopped)\n"
    "• `/agent reset`: every agent of this channel forgets everything (asks first)\n"
    "• `/agent stop <link to a thread>`: stop the answer that thread's agent is writing\n"
    "• `/agent limits`: the daily budgets and rate limits; `/agent limits <name> <value>` changes one (admins)\n"
    "• `/agent config`: this channel's agent settings: instructions, model, tools (admins)\n"
    "• `/agent memory`: what this channel's agents remember; `/agent memory clear` or `remove <path>` (admins)\n"
    "• `/agent schedules`: this channel's scheduled follow-ups, each with a Cancel button; "
    "`/agent schedules cancel <id>` cancels one\n"
    "• `/agent help`: this text\n"
    "Copy a thread's link with *Copy link* on any of its messages. Inside a thread, mention me with `status`, "
    "`reset` or `stop` instead."
)


@dataclass(frozen=True)
class Controls:
    """The operator's controls `/agent` applies: who may do what, the limits, and what was spent."""

    admins: Admins
    limits: LimitStore
    spend: SpendStore


class AgentCommands:
    """What `/agent` can do, whichever way Slack delivered it."""

    def __init__(
        self,
        threads: ThreadStore,
        queue: TaskQueue,
        intake: Intake,
        slack: SlackGateway,
        feedback: FeedbackStore,
        controls: Controls,
        config: ConfigDesk | None = None,
    ) -> None:
        self._config = config  # the channel's settings, shown in its status
        self._threads = threads
        self._queue = queue
        self._intake = intake
        self._slack = slack
        self._feedback = feedback
        self._controls = controls

    async def channel_status(self, team_id: str, channel_id: str, team_domain: str, user_id: str = "") -> Answer:
        """The channel's agents: how many in each state, the most recent ones, the queue, the workers, feedback."""
        counts = await self._threads.channel_counts(team_id, channel_id)
        recent = await self._threads.channel_agents(team_id, channel_id, RECENT_AGENTS)
        usage = await self._threads.channel_usage(team_id, channel_id)
        depth = await self._queue.threads_with_work(team_id)
        workers = await self._queue.live_workers()
        votes = await self._feedback.channel_feedback(team_id, channel_id)
        team_votes = await self._feedback.team_feedback(team_id)
        blocks = channel_overview(
            channel_id,
            team_domain,
            counts,
            recent,
            usage,
            depth,
            workers,
            channel_feedback=votes,
            team_feedback=team_votes,
        )
        blocks.insert(1, await self._spend_block(Payer(team_id, channel_id, user_id)))
        if self._config is not None:
            blocks.insert(2, await self._config.status(team_id, channel_id))
        if not counts.agents:
            return Answer("No agents in this channel yet: mention me in a thread to start one.", blocks)
        return Answer(f"{counts.agents} agent(s) in this channel, {counts.working} working.", blocks)

    async def thread_status(self, ref: ThreadRef, team_domain: str, *, link_is_reply: bool) -> Answer:
        """One thread's agent in detail."""
        state = await self._threads.state(ref)
        if state is None:
            return Answer(await self._no_agent_reason(ref, link_is_reply))
        current = await self._threads.current_task(ref)
        feedback = await self._feedback.thread_feedback(ref)
        return Answer(f"Agent status: {state.status}", thread_detail(ref, team_domain, state, current, feedback))

    async def reset_thread(
        self, ref: ThreadRef, team_domain: str, user_id: str, request_id: str, *, link_is_reply: bool
    ) -> Answer:
        """Reset one thread's agent now; its work in progress is cancelled and the thread is told who reset it."""
        if not await self._threads.has_agent(ref) and not await self._threads.current_task(ref):
            return Answer(await self._no_agent_reason(ref, link_is_reply))
        if not await self._controls.admins.may_act_on_thread(ref, user_id):
            return Answer(self._controls.admins.who_may("reset that thread's agent", thread=True))
        result = await self._intake.reset(
            Task(request_id, TaskKind.RESET, ref, "reset", user_id, ref.thread_ts, time.time())
        )
        label = thread_label(team_domain, ref)
        if result.outcome is SubmitResult.DUPLICATE:
            return Answer(f"That reset of {label} was already done.")
        stopped = " Its work in progress was stopped." if result.cancelled_replies else ""
        kept = " The channel's memory stays (`/agent memory`)."
        return Answer(f"Reset the agent of {label}: it has forgotten everything said in the thread.{kept}{stopped}")

    async def stop_thread(self, ref: ThreadRef, team_domain: str, user_id: str) -> Answer:
        """Stop the answer the thread's agent is writing, wherever it runs; its partial answer stays, marked."""
        if not await self._controls.admins.may_act_on_thread(ref, user_id):
            return Answer(self._controls.admins.who_may("stop that thread's answer", thread=True))
        outcome = await self._intake.stop(ref, user_id)
        label = thread_label(team_domain, ref)
        if outcome.result is StopResult.STOPPING:
            return Answer(f"Stopping the answer in {label}: what it has written so far stays.")
        if outcome.result is StopResult.ALREADY_STOPPING:
            return Answer(f"The answer in {label} is stopping already (<@{outcome.by}> asked).")
        return Answer(f"Nothing is running in {label}: there is no answer to stop.")

    async def ask_channel_reset(self, team_id: str, channel_id: str, user_id: str) -> Answer:
        """An admin is asked to confirm the reset of every agent of the channel; anyone else is told who may."""
        if not await self._controls.admins.is_admin(team_id, user_id):
            return Answer(self._controls.admins.who_may("reset every agent of a channel"))
        return self.confirm_channel_reset(channel_id)

    def confirm_channel_reset(self, channel_id: str) -> Answer:
        """Ask before resetting every agent of the channel."""
        question = (
            f"Reset *every* agent of <#{channel_id}>? They forget everything said in their threads, and work in "
            "progress stops. The channel's memory stays (`/agent memory clear` empties it)."
        )
        return Answer(question, channel_reset_question(channel_id, question))

    async def reset_channel(self, team_id: str, channel_id: str, user_id: str, request_id: str) -> Answer:
        """Queue the reset of every agent of the channel (and its usage totals); other channels are not touched.

        The reset runs as a task (bot/tasks/channel_reset.py): a channel's agents can be many, and a crash half
        way must not leave some of them reset and the rest not; each thread is told as its agent is reset.
        """
        if not await self._controls.admins.is_admin(team_id, user_id):  # the button's clicker, checked again
            return Answer(self._controls.admins.who_may("reset every agent of a channel"))
        agents = len(await self._threads.channel_threads(team_id, channel_id))
        ref = ThreadRef(team_id, channel_id, CHANNEL_WIDE)
        task = Task(request_id, TaskKind.CHANNEL_RESET, ref, "reset", user_id, CHANNEL_WIDE, time.time())
        if await self._intake.channel_reset(task) is SubmitResult.DUPLICATE:
            return Answer(f"That reset of <#{channel_id}> was already requested.")
        return Answer(
            f"Resetting {agents} agent(s) of <#{channel_id}>: each thread is told when its agent has forgotten."
        )

    async def limits(self, team_id: str, user_id: str, words: list[str]) -> Answer:
        """`/agent limits`: show the workspace's limits; `/agent limits NAME VALUE` changes one (admins only)."""
        store, admins = self._controls.limits, self._controls.admins
        if not words:
            return Answer(limits_text(await store.view(team_id)))
        if len(words) != 2:
            return Answer("Say which limit and its new value, e.g. `/agent limits user_daily_usd 5`.")
        if not await admins.is_admin(team_id, user_id):
            return Answer(admins.who_may("change the limits"))
        try:
            name = limit_name(words[0])
            if words[1].lower() == "default":
                await store.clear(team_id, name)
                return Answer(f"`{name}` is back to its setting.\n" + limits_text(await store.view(team_id)))
            value = parse_limit(name, words[1])
        except ValueError as exc:
            return Answer(f"Nothing changed: {exc}.")
        setting = store.defaults.value(name)
        raises = setting > 0 and (value == 0 or value > setting)
        if raises and user_id not in admins.admin_ids:
            # The settings are the operator's: a workspace's own admins may tighten a limit, not lift it.
            return Answer(
                f"Nothing changed: only the app's operators (ADMIN_USER_IDS) may raise `{name}` above its setting, "
                f"{limit_value(name, setting)}."
            )
        await store.set(team_id, name, value)
        return Answer(f"`{name}` is now {limit_value(name, value)}.\n" + limits_text(await store.view(team_id)))

    async def _spend_block(self, payer: Payer) -> dict[str, Any]:
        """Today's spend against the budgets, for `/agent status`."""
        now = time.time()
        view = await self._controls.limits.view(payer.team_id)
        return spend_block(await self._controls.spend.spent(payer, now), view, now)

    async def _no_agent_reason(self, ref: ThreadRef, link_is_reply: bool) -> str:
        """Why a linked thread has no agent: it is not a thread at all, or nobody mentioned me there."""
        if not link_is_reply:
            try:
                in_a_thread = await self._slack.is_thread(ref)  # one small read, however long the thread
            except SlackError:
                return "I cannot find that message: is the link right, and am I in its channel?"
            if not in_a_thread:
                return "That message is not in a thread: link a thread (any of its messages)."
        return "That thread has no agent: nobody has mentioned me there (or it was reset)."
