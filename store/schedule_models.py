"""What durable timers are made of (store/schedules.py): what is asked, what is stored, and the names that tie a
schedule to its run's task and to its entries in the indexes. Times are Unix seconds; Redis keeps integer ms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from store.errors import CorruptRecord
from store.models import ThreadRef

ScheduleKind = Literal["once", "every", "cron"]
KINDS: tuple[ScheduleKind, ...] = ("once", "every", "cron")
TASK_PREFIX = "sched-"  # a scheduled run's task id: sched-ID-DUE_MS


def to_ms(seconds: float) -> int:
    """Unix seconds as the integer milliseconds Redis keeps."""
    return round(seconds * 1000)


def run_task_id(schedule_id: str, due: float) -> str:
    """The task id of a schedule's run due at `due`: the same for every firing of that run."""
    return f"{TASK_PREFIX}{schedule_id}-{to_ms(due)}"


def schedule_of_task(task_id: str) -> str | None:
    """The schedule a scheduled run's task id names, or None for another task's id."""
    if not task_id.startswith(TASK_PREFIX):
        return None
    schedule_id, _, due = task_id.removeprefix(TASK_PREFIX).rpartition("-")
    return schedule_id if schedule_id and due.isdigit() else None


class ScheduleRefused(ValueError):
    """A schedule was refused (a limit, a too short interval, a start too far ahead); str() says why, for people and
    for the model alike."""


@dataclass(frozen=True)
class ScheduleLimits:
    """The bounds on schedules (settings SCHEDULES_PER_THREAD and the like)."""

    per_thread: int = 10
    per_channel: int = 50
    min_interval: float = 300.0  # seconds between runs of a recurring schedule, at least
    max_lifetime: float = 30 * 86400.0  # seconds a schedule may run for after it is made
    max_failures: int = 3  # failed runs in a row that pause a recurring schedule (0: never)


@dataclass(frozen=True)
class ScheduleSpec:
    """What to schedule: `at` is the first run (Unix seconds); `every` (seconds) makes it recurring, and so does
    `cron` (a five-field expression read in zone `tz`; its first run is its first time after `at`). A recurring one
    ends after `count` runs, at `until`, when the agent says its goal is met (`until_goal`: cancel() then), or at its
    lifetime cap, whichever comes first. `tz` is the creator's zone, kept to show times in."""

    thread: ThreadRef
    at: float
    note: str
    created_by: str
    every: float | None = None
    count: int | None = None
    until: float | None = None
    until_goal: bool = False
    cron: str | None = None
    tz: str = "UTC"

    @property
    def kind(self) -> ScheduleKind:
        """once, every or cron."""
        if self.cron is not None:
            return "cron"
        return "once" if self.every is None else "every"


@dataclass(frozen=True)
class Schedule:
    """A schedule as stored."""

    schedule_id: str
    thread: ThreadRef
    kind: ScheduleKind
    next_at: float
    note: str
    created_by: str
    created_at: float
    ends_at: float
    every: float | None = None
    count: int | None = None
    until: float | None = None
    until_goal: bool = False
    fired: int = 0
    failures: int = 0
    paused: bool = False
    cron: str | None = None
    tz: str = "UTC"

    @property
    def recurring(self) -> bool:
        """Whether it runs more than once (every or cron)."""
        return self.kind != "once"

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Schedule:
        """Parse a schedule hash."""
        try:
            kinds = [known for known in KINDS if known == fields["kind"]]
            if not kinds:
                raise ValueError(fields["kind"])
            kind = kinds[0]
            return cls(
                schedule_id=fields["id"],
                thread=ThreadRef.decode(fields["thread"]),
                kind=kind,
                next_at=int(fields["next_at"]) / 1000,
                note=fields["note"],
                created_by=fields["created_by"],
                created_at=int(fields["created_at"]) / 1000,
                ends_at=int(fields["ends_at"]) / 1000,
                every=int(fields["every_ms"]) / 1000 if kind == "every" else None,
                count=int(fields["end_count"]) or None,
                until=int(fields["until"]) / 1000 if int(fields["until"]) else None,
                until_goal=fields.get("until_goal") == "1",
                fired=int(fields.get("fired", "0")),
                failures=int(fields.get("failures", "0")),
                paused=fields.get("paused") == "1",
                cron=fields["cron"] if kind == "cron" else None,
                tz=fields.get("tz") or "UTC",
            )
        except (KeyError, ValueError) as exc:
            raise CorruptRecord(f"malformed schedule {fields.get('id')!r}") from exc


@dataclass(frozen=True)
class DueTimer:
    """A due index entry: a schedule's run due at `due_ms`."""

    member: str
    thread: ThreadRef
    schedule_id: str
    due_ms: int

    @classmethod
    def parse(cls, member: str, score: float) -> DueTimer | None:
        """The entry, or None for a member that is not one (it is then ignored)."""
        parts = member.split(":")
        if len(parts) != 4 or not parts[3]:
            return None
        try:
            ref = ThreadRef(*parts[:3])
        except ValueError:
            return None
        return cls(member, ref, parts[3], int(score))


def due_member(ref: ThreadRef, schedule_id: str) -> str:
    """A schedule's member in its shard's due index: its thread and id."""
    return f"{ref.encode()}:{schedule_id}"


def channel_member(ref: ThreadRef, schedule_id: str) -> str:
    """A schedule's member in its channel's index."""
    return f"{ref.thread_ts}:{schedule_id}"
