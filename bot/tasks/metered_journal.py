"""The task journal, counting each task's outcome in the metrics as it finishes (bot/core/metrics.py, TASKS).

Every handler ends its task through TaskJournal.finish, so counting there counts each kind of task, present and
future, in one place. finish() says whether this call finished the task: a task run again after a crash, or
finished by two workers racing over a lease, is counted once.
"""

from __future__ import annotations

from typing import Any

from bot.core import metrics
from store.journal import TaskJournal
from store.models import Task, TaskStatus
from store.tasks import ThreadLease


class MeteredJournal(TaskJournal):
    """A TaskJournal whose finish() counts the task's kind and outcome once it is recorded."""

    async def finish(self, lease: ThreadLease, task: Task, status: TaskStatus, **details: Any) -> bool:
        """Finish the task as TaskJournal does; count it if this call finished it."""
        finished = await super().finish(lease, task, status, **details)
        if finished:
            metrics.TASKS.labels(kind=task.kind.value, outcome=status.value).inc()
        return finished
