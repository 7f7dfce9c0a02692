"""docs/benchmarks.md: one marked block per section, so a run that skips a section keeps
the block the last run wrote (with its date) instead of dropping it."""

from __future__ import annotations

from collections.abc import Sequence


def marks(name: str) -> tuple[str, str]:
    return f"<!-- {name} -->", f"<!-- /{name} -->"


def block(text: str, name: str) -> list[str] | None:
    """The lines of section `name` in an earlier report (markers included), if there."""
    begin, end = marks(name)
    if begin not in text or end not in text:
        return None
    inner = text.split(begin, 1)[1].split(end, 1)[0]
    return [begin, *inner.strip("\n").splitlines(), end]


def compose(old: str, head: Sequence[str],
            sections: Sequence[tuple[str, list[str] | None]]) -> str:
    """The report: `head`, then each section's new lines (wrapped in its markers), or its
    block from `old` when this run did not measure it."""
    lines = list(head)
    for name, new in sections:
        if new:
            begin, end = marks(name)
            body = new
            if new[0] == begin:  # the section wrote its own markers
                body = new[1:-1] if new[-1] == end else new[1:]
            lines += ["", begin, "", *body, "", end]
        else:
            kept = block(old, name)
            if kept:
                lines += ["", *kept]
    return "\n".join(lines).rstrip() + "\n"


def ratio(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "**not met**"


def replace_block(text: str, name: str, lines: list[str]) -> str:
    """`text` with section `name`'s block replaced by `lines` (appended if missing)."""
    begin, end = marks(name)
    new = "\n".join([begin, "", *lines, "", end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + new + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + new + "\n"
