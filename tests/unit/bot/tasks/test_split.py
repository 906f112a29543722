"""Long answers split into Slack messages between paragraphs, code blocks closed and reopened when cut."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.tasks.split import split_markdown


def fence_lines(part: str) -> int:
    return sum(1 for line in part.split("\n") if line.strip().startswith("```"))


def long_answer() -> str:
    """About 20,000 characters: prose, lists, and code blocks, one of them longer than a message."""
    sections = []
    for n in range(12):
        sections.append(f"## Part {n}\n\n" + " ".join(f"Prose sentence {n}.{i} about the design." for i in range(25)))
        sections.append("- a point\n  - a nested point with `inline code`\n- another point")
        sections.append(
            "```python\n" + "\n".join(f"value_{n}_{i} = compute({i})  # step {i}" for i in range(12)) + "\n```"
        )
    sections.insert(
        6, "```sql\n" + "\n".join(f"SELECT {i} FROM big_table WHERE id = {i};" for i in range(300)) + "\n```"
    )
    return "\n\n".join(sections)


def test_a_20000_character_answer_arrives_whole_and_in_order() -> None:
    answer = long_answer()
    assert len(answer) > 20_000
    parts = split_markdown(answer, limit=8_000)
    assert len(parts) >= 3 and all(len(part) <= 8_000 for part in parts)
    assert all(fence_lines(part) % 2 == 0 for part in parts)  # every message renders its code as code
    # Read in order, the parts are the answer, but for the long code block's closing and reopening at a cut.
    rejoined = "\n".join(parts).replace("\n```\n```sql\n", "\n")
    assert [line for line in rejoined.split("\n") if line.strip()] == [
        line for line in answer.split("\n") if line.strip()
    ]
    assert parts[0].startswith("## Part 0")


def test_a_short_answer_is_one_part() -> None:
    assert split_markdown("hello\n\n```\ncode\n```", limit=100) == ["hello\n\n```\ncode\n```"]


@settings(deadline=None, max_examples=60)
@given(
    paragraphs=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="`\n"), max_size=900),
            st.builds(lambda body: "```\n" + body + "\n```", st.text(alphabet="abc \n", max_size=2500)),
        ),
        max_size=30,
    ),
    limit=st.integers(300, 5000),
)
def test_any_answer_splits_into_parts_under_the_limit_with_balanced_fences(paragraphs: list[str], limit: int) -> None:
    text = "\n\n".join(paragraphs)
    parts = split_markdown(text, limit=limit)
    assert all(len(part) <= limit for part in parts)
    assert all(fence_lines(part) % 2 == 0 for part in parts) or fence_lines(text) % 2 == 1
    kept = "".join(part.replace("```", "") for part in parts).replace("\n", "").replace(" ", "")
    assert kept == text.replace("```", "").replace("\n", "").replace(" ", "")
