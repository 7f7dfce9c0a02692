"""Where the catch-up's time goes: py-spy's collapsed stacks of `wacdc run` grouped into
the pipeline's stages, as a markdown block for docs/benchmarks.md.

    python bench/mixed.py --changes 50000 --profile after.txt     # py-spy record -f raw
    python bench/profile.py before.txt:"label" after.txt:"label"  # prints the block

Samples of the main thread only (py-spy names every thread's stack; the HTTP and
backlog threads mostly sleep). A sample counts for the first stage, in the order below,
whose frame is on its stack.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

WAITING = "waiting for PostgreSQL (psycopg's wait itself)"
STAGES = (  # (stage, a frame that marks it)
    (WAITING, "Connection.wait (psycopg/connection.py"),
    ("binlog framing: the library's event objects", "BinLogPacketWrapper.__init__"),
    ("reading binlog packets (PyMySQL)", "Connection._read_packet"),
    ("row images decoded (compiled plans)", "CompiledDecoder.images"),
    ("values converted", "RowConverter.convert"),
    ("statements and parameters (psycopg)", "Cursor.executemany"),
    ("commits (psycopg)", "Applier.apply"),
    ("grouping into transactions, batching, checkpoint", "StreamSession.run"),
    ("start-up: imports, connects, catalog and schema checks, exit", ""),
)
OTHER_THREADS = ("Thread._bootstrap", "HttpServer.serve_forever", "BacklogWatcher.run")


def stages(path: Path) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or any(mark in stack for mark in OTHER_THREADS):
            continue
        total += int(n)
        leaf = stack.rsplit(";", 1)[-1]
        for stage, mark in STAGES:
            # Waiting is the wait call itself (psycopg runs its generators inside it).
            if mark in (leaf if stage == WAITING else stack):
                counts[stage] += int(n)
                break
    return counts, total


def block(profiles: list[tuple[str, Path]]) -> list[str]:
    measured = [(label, *stages(path)) for label, path in profiles]
    lines = ["## Where the catch-up's time goes (py-spy, main thread)", "",
             "`wacdc run --exit-when-caught-up` over the mixed burst of 50,000 changes "
             "(bench/mixed.py --profile, 250 samples/s; bench/profile.py groups them). Shares "
             "of the main thread's samples:", "",
             "| stage | " + " | ".join(label for label, _, _ in measured) + " |",
             "|---|" + "---:|" * len(measured)]
    for stage, _ in STAGES:
        cells = [f"{100 * counts[stage] / total:.0f}%" for _, counts, total in measured]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| samples (seconds) | " + " | ".join(
        f"{total} ({total / 250:.1f} s)" for _, _, total in measured) + " |")
    return [*lines, ""]


if __name__ == "__main__":
    write = "--write" in sys.argv  # into docs/benchmarks.md's "profile" block (make bench keeps it)
    pairs = [arg.split(":", 1) for arg in sys.argv[1:] if arg != "--write"]
    lines = block([(label, Path(path)) for path, label in pairs])
    if write:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from bench.report import replace_block
        report = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
        report.write_text(replace_block(report.read_text(), "profile", lines))
    print("\n".join(lines))
