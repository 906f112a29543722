"""The memory tool's commands over a channel's memory in Redis: paths held under /memories, the six commands, and
a write applied once however often its call is run."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.agent.memory_paths import BadPath, checked_path
from bot.agent.memory_tool import MemoryTool
from bot.agent.setup import AgentSetup
from bot.agent.tools import MAX_RESULT_CHARS, ToolCall
from bot.core.faults import CrashPoints
from store.memory import MemoryLimits, MemoryStore
from store.models import Task, TaskKind, ThreadRef

THREAD = ThreadRef("T1", "C1", "1700000000.000100")
TASK = Task("task-1", TaskKind.ANSWER, THREAD, "hi", "U1", "1700000001.000100", time.time())
CHANNEL = AgentSetup(tools=("memory",), scope="T1:C1")


@pytest.fixture
def store(redis: Redis) -> MemoryStore:
    return MemoryStore(redis, MemoryLimits(max_bytes=2_000, max_files=5), ttl_seconds=3600, applied_ttl_seconds=60)


@pytest.fixture
def tool(store: MemoryStore) -> MemoryTool:
    return MemoryTool(store, CrashPoints())


_calls = 0


async def run(
    tool: MemoryTool, setup: AgentSetup = CHANNEL, call_id: str | None = None, **command: Any
) -> tuple[str, bool]:
    global _calls
    _calls += 1
    result = await tool.run(ToolCall(call_id or f"toolu_{_calls}", "memory", command, TASK, setup))
    return result.text, result.is_error


@pytest.mark.parametrize(
    "path",
    [
        "/memories/../etc/passwd",
        "/memories/a/../../x",
        "/etc/passwd",
        "/memoriesx/a",
        "memories/a",
        "/memories/./a",
        "/memories/.hidden",
        "/memories/a\\..\\b",
        "/memories/%2e%2e/x",
        "/memories//a",
        "/memories/a\n",
        "/memories/" + "a" * 250,
        None,
    ],
)
def test_paths_outside_memories_or_odd_are_refused(path: object) -> None:
    """Traversal however spelled, other roots, hidden names, encodings and control characters are refused."""
    with pytest.raises(BadPath):
        checked_path(path)


def test_good_paths_are_canonical() -> None:
    """A trailing slash is dropped; /memories itself is allowed only where a command may name it."""
    assert checked_path("/memories/team/notes.md/") == "/memories/team/notes.md"
    assert checked_path("/memories/", root_allowed=True) == "/memories"
    with pytest.raises(BadPath):
        checked_path("/memories")


async def test_create_view_edit_insert_rename_delete(tool: MemoryTool) -> None:
    """The six commands do what the documentation says, with results the model can read."""
    assert await run(tool, command="view", path="/memories") == (
        "Files and folders in /memories, up to 2 levels deep, with their sizes:\n0B\t/memories",
        False,
    )
    text, error = await run(tool, command="create", path="/memories/team/people.md", file_text="Ana: lead\nBo: ops\n")
    assert not error and "created" in text
    text, _ = await run(tool, command="view", path="/memories")
    assert "/memories/team/" in text and "/memories/team/people.md" in text
    text, _ = await run(tool, command="view", path="/memories/team/people.md")
    assert text.splitlines()[1:3] == ["     1\tAna: lead", "     2\tBo: ops"]
    text, error = await run(
        tool, command="str_replace", path="/memories/team/people.md", old_str="Bo: ops", new_str="Bo: infra"
    )
    assert not error and "Bo: infra" in text
    text, error = await run(tool, command="str_replace", path="/memories/team/people.md", old_str="nobody", new_str="x")
    assert error and "does not appear" in text
    text, error = await run(
        tool, command="insert", path="/memories/team/people.md", insert_line=0, insert_text="# People"
    )
    assert not error
    text, _ = await run(tool, command="view", path="/memories/team/people.md", view_range=[1, 2])
    assert text.splitlines()[1:] == ["     1\t# People", "     2\tAna: lead"]
    text, error = await run(tool, command="rename", old_path="/memories/team", new_path="/memories/crew")
    assert not error
    text, error = await run(tool, command="view", path="/memories/team/people.md")
    assert error and "does not exist" in text
    text, error = await run(tool, command="delete", path="/memories/crew")
    assert not error
    assert (await run(tool, command="view", path="/memories"))[0].endswith("0B\t/memories")


async def test_a_replayed_write_is_applied_once(tool: MemoryTool, store: MemoryStore) -> None:
    """The same tool call run twice (a resume after a crash) gives the first result and does not apply twice."""
    await run(tool, command="create", path="/memories/log.md", file_text="one\n")
    first = await run(
        tool, call_id="toolu_same", command="insert", path="/memories/log.md", insert_line=1, insert_text="two"
    )
    again = await run(
        tool, call_id="toolu_same", command="insert", path="/memories/log.md", insert_line=1, insert_text="two"
    )
    assert first == again and not first[1]
    assert (await store.snapshot("T1:C1")).files == {"/memories/log.md": "one\ntwo\n"}
    # A create replayed after a later change does not undo that change either.
    await run(tool, call_id="toolu_create", command="create", path="/memories/x.md", file_text="v1")
    await run(tool, command="create", path="/memories/x.md", file_text="v2")
    assert (await run(tool, call_id="toolu_create", command="create", path="/memories/x.md", file_text="v1"))[
        1
    ] is False
    assert (await store.snapshot("T1:C1")).files["/memories/x.md"] == "v2"


async def test_no_scope_no_memory(tool: MemoryTool, store: MemoryStore) -> None:
    """A task without a scope (a DM) is told there is no memory, and nothing is read or written."""
    text, error = await run(tool, AgentSetup(), command="create", path="/memories/a.md", file_text="secret")
    assert error and "no memory" in text
    assert (await store.snapshot("T1:C1")).files == {}


async def test_the_caps_and_bounds_give_error_results(tool: MemoryTool) -> None:
    """A write past the caps, an unknown command, a bad path or a huge input is an error result, not an exception."""
    text, error = await run(tool, command="create", path="/memories/a.md", file_text="x" * 2_001)
    assert error and "may hold 2,000" in text
    for name in "abcde":
        await run(tool, command="create", path=f"/memories/{name}", file_text="x")
    text, error = await run(tool, command="create", path="/memories/f", file_text="x")
    assert error and "5 files" in text
    assert (await run(tool, command="format"))[1]
    assert (await run(tool, command="view", path="/etc"))[1]
    assert (await run(tool, command="create", path="/memories/a", file_text="x" * 200_000))[1]


async def test_a_long_file_view_is_cut_to_the_result_cap(redis: Redis) -> None:
    """Viewing a file longer than a tool result may be is cut, with a hint to page with view_range."""
    store = MemoryStore(redis, MemoryLimits(max_bytes=50_000), ttl_seconds=60, applied_ttl_seconds=60)
    tool = MemoryTool(store, CrashPoints())
    await run(tool, command="create", path="/memories/long.md", file_text="line\n" * 3_000)
    text, error = await run(tool, command="view", path="/memories/long.md")
    assert not error and len(text) <= MAX_RESULT_CHARS + 100 and "view_range" in text


def test_the_system_prompt_says_whose_memory_it_is_only_where_there_is_one() -> None:
    """A task with a memory scope gets the note on the shared memory (after the channel's instructions); one
    without (a DM, memory off) does not, and the prompt is the same bytes for two tasks of one setup."""
    from bot.agent.setup import MEMORY_NOTE

    with_memory = AgentSetup(instructions="Be brief.", tools=("memory",), scope="T1:C1")
    assert with_memory.system_prompt("Base.").endswith("Be brief.\n\n" + MEMORY_NOTE)
    assert with_memory.system_prompt("Base.") == AgentSetup(**vars(with_memory)).system_prompt("Base.")
    assert AgentSetup().system_prompt("Base.") == "Base."


async def test_agents_writing_at_once_lose_nothing(tool: MemoryTool, store: MemoryStore) -> None:
    """Inserts made at the same time by several agents of the channel all land: a change computed from a memory
    that moved on is recomputed, not written over the other."""
    import asyncio

    await run(tool, command="create", path="/memories/log.md", file_text="")
    results = await asyncio.gather(
        *(
            run(tool, command="insert", path="/memories/log.md", insert_line=0, insert_text=f"line {n}")
            for n in range(5)
        )
    )
    assert not any(error for _, error in results)
    lines = (await store.snapshot("T1:C1")).files["/memories/log.md"].splitlines()
    assert sorted(lines) == [f"line {n}" for n in range(5)]
