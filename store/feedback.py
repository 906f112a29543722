"""Feedback on answers: one vote per person per answer, changeable, counted per thread, channel and workspace.

Votes are taken only for a thread that has an agent (a click under an answer of a reset or expired agent is refused),
and a reset keeps them: they are about answers already given, which stay in the thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, StrEnum

from store import decode, keys
from store import feedback_lua as lua
from store.connection import RedisClient
from store.keys import KeySpace
from store.models import ThreadRef

# A thread holds at most this many votes (people x answers); a new vote past it is refused, a changed one still
# counts. It bounds what a thread stores, and what its status reads, to about 50 KB.
MAX_VOTES_PER_THREAD = 1000
# The thread's status lists at most this many of its thumbs-down answers.
MAX_LISTED_DOWN = 10

# A Slack message ts: seconds, a dot, six digits ("1700000000.000100"). Anything else names no message.
_SLACK_TS = re.compile(r"\d{10}\.\d{6}")
# A Slack user id ("U0123ABCD", "W..." on Enterprise Grid); it becomes part of a hash field.
_SLACK_USER = re.compile(r"[A-Z0-9]{1,40}")


class Vote(StrEnum):
    """Which button a person pressed, as stored."""

    UP = "+"
    DOWN = "-"


class VoteOutcome(Enum):
    """What recording a vote did."""

    NEW = lua.NEW
    CHANGED = lua.CHANGED
    UNCHANGED = lua.UNCHANGED
    NO_AGENT = lua.NO_AGENT  # the thread has no agent: nothing stored
    FULL = lua.FULL  # the thread holds MAX_VOTES_PER_THREAD votes: nothing stored


@dataclass(frozen=True)
class AnswerVote:
    """One person's vote on one answer of a thread; ValueError unless every part names something Slack could send."""

    thread: ThreadRef
    answer_ts: str
    user_id: str
    vote: Vote

    def __post_init__(self) -> None:
        if not _SLACK_TS.fullmatch(self.answer_ts):
            raise ValueError(f"answer_ts is not a Slack ts: {self.answer_ts[:40]!r}")
        if not _SLACK_TS.fullmatch(self.thread.thread_ts):
            raise ValueError(f"thread_ts is not a Slack ts: {self.thread.thread_ts[:40]!r}")
        if not _SLACK_USER.fullmatch(self.user_id):
            raise ValueError(f"not a Slack user id: {self.user_id[:40]!r}")


@dataclass(frozen=True)
class FeedbackCounts:
    """Thumbs up and thumbs down, as votes stand now."""

    up: int = 0
    down: int = 0

    def __add__(self, other: FeedbackCounts) -> FeedbackCounts:
        return FeedbackCounts(self.up + other.up, self.down + other.down)

    @property
    def votes(self) -> int:
        """Every vote counted."""
        return self.up + self.down

    @property
    def rate(self) -> float | None:
        """The share of thumbs up (0 to 1); None without votes."""
        return self.up / self.votes if self.votes else None

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> FeedbackCounts:
        """A counters hash; missing fields read as zero, and a count never reads below zero."""
        return cls(max(0, int(fields.get("up", "0") or 0)), max(0, int(fields.get("down", "0") or 0)))


@dataclass(frozen=True)
class DownVotedAnswer:
    """An answer someone gave a thumbs down."""

    answer_ts: str
    down: int  # how many people did


@dataclass(frozen=True)
class ThreadFeedback:
    """A thread's counts and its thumbs-down answers, most recent first (at most MAX_LISTED_DOWN)."""

    counts: FeedbackCounts
    down_voted: list[DownVotedAnswer]
    more_down_voted: int = 0  # thumbs-down answers beyond the list


class FeedbackStore:
    """Records votes on answers and reads their counts."""

    def __init__(
        self,
        redis: RedisClient,
        space: KeySpace | None = None,
        *,
        agent_ttl: int = keys.AGENT_TTL,
        max_votes: int = MAX_VOTES_PER_THREAD,
    ) -> None:
        self._redis = redis
        self._keys = space or KeySpace()  # the default shard count unless told
        self._agent_ttl = agent_ttl
        self._max_votes = max_votes
        self._vote = redis.register_script(lua.VOTE)

    async def record(self, vote: AnswerVote) -> VoteOutcome:
        """Record the vote, replacing the person's earlier one on that answer, in one atomic step."""
        ref, shard = vote.thread, self._keys.shard_of(vote.thread)
        result = await self._vote(
            keys=[
                self._keys.answer_votes(ref),
                self._keys.thread_feedback(ref),
                self._keys.channel_feedback(ref.team_id, ref.channel_id, shard),
                self._keys.team_feedback(ref.team_id, shard),
                self._keys.state(ref),
            ],
            args=[f"{vote.answer_ts} {vote.user_id}", vote.vote.value, self._max_votes, self._agent_ttl],
        )
        return VoteOutcome(int(str(result)))

    async def thread_feedback(self, ref: ThreadRef) -> ThreadFeedback:
        """The thread's counts and its thumbs-down answers, newest first."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._keys.thread_feedback(ref))
        pipe.hgetall(self._keys.answer_votes(ref))
        counters, votes = await pipe.execute()
        down: dict[str, int] = {}
        for field, value in decode.fields(votes).items():
            answer_ts, _, _ = field.partition(" ")
            if value == Vote.DOWN:
                down[answer_ts] = down.get(answer_ts, 0) + 1
        # Slack ts have ten digits before the dot and six after: their text sorts as their time does.
        newest = sorted(down.items(), reverse=True)
        listed = [DownVotedAnswer(answer_ts, count) for answer_ts, count in newest[:MAX_LISTED_DOWN]]
        extra = max(0, len(newest) - MAX_LISTED_DOWN)
        return ThreadFeedback(FeedbackCounts.from_fields(decode.fields(counters)), listed, extra)

    async def channel_feedback(self, team_id: str, channel_id: str) -> FeedbackCounts:
        """The counts of every thread of the channel (the shards' counters summed)."""
        names = [self._keys.channel_feedback(team_id, channel_id, shard) for shard in range(self._keys.shards)]
        return await self._sum(names)

    async def team_feedback(self, team_id: str) -> FeedbackCounts:
        """The counts of every thread of the workspace (the shards' counters summed)."""
        return await self._sum([self._keys.team_feedback(team_id, shard) for shard in range(self._keys.shards)])

    async def _sum(self, names: list[str]) -> FeedbackCounts:
        # One pipeline: on a cluster, one round trip per node holding some of the shards.
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(name)
        total = FeedbackCounts()
        for raw in await pipe.execute():
            total += FeedbackCounts.from_fields(decode.fields(raw))
        return total
