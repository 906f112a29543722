"""`/agent` slash command: see or reset agents. Answers are short texts shown only to the person asking."""

from __future__ import annotations

import time

from bot.intake import Intake
from bot.status import describe_state, describe_usage
from store.models import Task, TaskKind, ThreadRef
from store.tasks import SubmitResult
from store.threads import ThreadStore

HELP = (
    "*Usage:* `/agent status` lists this channel's agents; `/agent status <link to a thread>` shows one; "
    "`/agent reset <link to a thread>` makes that thread's agent forget everything. In a thread you can also "
    "mention me with `status` or `reset`."
)


class AgentCommands:
    """What `/agent` can do, independent of how Slack delivered it."""

    def __init__(self, threads: ThreadStore, intake: Intake) -> None:
        self._threads = threads
        self._intake = intake

    async def status(self, team_id: str, channel_id: str, thread_ts: str | None) -> str:
        """One thread's agent, or an overview of the channel's agents."""
        if thread_ts is not None:
            return describe_state(await self._threads.state(ThreadRef(team_id, channel_id, thread_ts)))
        agents = await self._threads.channel_agents(team_id, channel_id)
        if not agents:
            return "No agents in this channel yet: mention me in a thread to start one."
        usage = await self._threads.channel_usage(team_id, channel_id)
        lines = [f"*This channel:* {describe_usage(usage)}", f"*Agents* (most recent {len(agents)}):"]
        for ref, state in agents:
            lines.append(
                f"• thread {ref.thread_ts or '(direct messages)'}: {state.status}, {state.turns} turns, "
                f"{state.tasks_done} done / {state.tasks_failed} failed, about ${state.usage.cost_usd:,.4f}"
            )
        return "\n".join(lines)

    async def reset(self, team_id: str, channel_id: str, thread_ts: str | None, user_id: str, request_id: str) -> str:
        """Queue a reset of one thread's agent, behind the work already queued for that thread."""
        if thread_ts is None:
            return "Which thread? Use `/agent reset <link to the thread>`, or mention me with `reset` in it."
        ref = ThreadRef(team_id, channel_id, thread_ts)
        if not await self._threads.has_agent(ref):
            return "That thread has no agent: nothing to reset."
        task = Task(request_id, TaskKind.RESET, ref, "reset", user_id, thread_ts, time.time())
        result = await self._intake.submit(task)
        if result is SubmitResult.DUPLICATE:
            return "That reset was already requested."
        return "Resetting that thread's agent; it will say so in the thread."
