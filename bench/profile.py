"""Where the catch-up's time goes: py-spy's raw stacks of `wacdc run` grouped into the
pipeline's stages, for each lane of work that runs at the same time, as a markdown
block for docs/benchmarks.md.

    python bench/mixed.py --changes 150000 --profile now.txt      # py-spy record -f raw
    python bench/profile.py now.txt:"label" [more.txt:"label"...]  # prints the block
    python bench/profile.py --write now.txt:"label"               # into docs/benchmarks.md

The lanes: the daemon's loop (its main thread), the applying thread (WACDC_APPLY_BEHIND)
and the decode process (WACDC_DECODE_IN=process; bench/mixed.py samples it with
`--subprocesses`). The HTTP and backlog threads mostly sleep and are left out. A sample
counts for the first stage, in the order below, whose frame is on its stack; the
waiting stages go by the sample's innermost frame. py-spy samples a thread blocked in a
call it does not know to be idle (psycopg's wait, a pipe read) as busy, so waiting
shows as the stage it is.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

RATE = 250  # samples/s, as bench/wacdc_process.py records them

LANES = ("the loop (main thread)", "applying thread", "decode process")
STAGES = (  # (stage, frames that mark it, whether a mark must be the innermost frame)
    ("waiting for PostgreSQL (psycopg's wait)", ("Connection.wait (psycopg/connection.py",),
     True),
    ("waiting for a batch to apply", ("_worker (concurrent/futures/thread.py",), True),
    ("waiting for the applying thread's commit", ("ApplyBehind.settle",), False),
    ("receiving from the decode process (waiting, unpickling)", ("ChildSource._receive",),
     False),
    ("handing over to the daemon (pickling, pipe)", ("_Sender.__call__",), False),
    ("binlog framing: the library's event objects", ("BinLogPacketWrapper.__init__",), False),
    ("binlog framing: wacdc's, from the packet", ("(wacdc/source/packet_framing.py",), False),
    ("reading binlog packets (PyMySQL, TLS)", ("Connection._read_packet",), False),
    ("row images decoded (compiled plans)", ("CompiledDecoder.images",), False),
    ("values converted", ("RowConverter.convert",), False),
    ("statements and parameters (psycopg)", ("Cursor.executemany",), False),
    ("commits and checkpoints (psycopg)", ("Applier.apply",), False),
    ("grouping into transactions, batching", ("StreamSession.run", "_forward ("), False),
    ("start-up: imports, connects, catalog and schema checks, exit", ("",), False),
)
IDLE_THREADS = ("HttpServer.serve_forever", "BacklogWatcher.run")


def lane(frames: list[str]) -> str | None:
    """Which lane a stack is in (None: a thread that is not one)."""
    processes = [f for f in frames if f.startswith("process ")]
    if len(processes) > 1:  # py-spy --subprocesses names the child under the daemon
        return LANES[2]
    if any(mark in f for f in frames for mark in IDLE_THREADS):
        return None
    if any(f.startswith("Thread._bootstrap") for f in frames):
        return LANES[1] if any("_WorkItem.run" in f or "_worker (" in f for f in frames) \
            else None
    return LANES[0]


def stages(path: Path) -> dict[str, Counter[str]]:
    """Samples per lane and stage."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in LANES}
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        where = lane(frames) if stack else None
        if where is None:
            continue
        for stage, marks, innermost in STAGES:
            if any(mark in (frames[-1] if innermost else stack) for mark in marks):
                counts[where][stage] += int(n)
                break
    return counts


def block(profiles: list[tuple[str, Path]]) -> list[str]:
    lines = ["## Where the catch-up's time goes (py-spy)", "",
             "`wacdc run --exit-when-caught-up` over the mixed burst (bench/mixed.py --profile, "
             f"{RATE} samples/s; bench/profile.py groups them): seconds of samples per lane "
             "and stage. The lanes run at the same time; under the profiler the run is "
             "slower than its timing.", ""]
    for label, path in profiles:
        counts = stages(path)
        used = [name for name in LANES if counts[name]]
        lines += [f"**{label}**", "", "| stage | " + " | ".join(used) + " |",
                  "|---|" + "---:|" * len(used)]
        for stage, _, _ in STAGES:
            if any(counts[name][stage] for name in used):
                cells = [f"{counts[name][stage] / RATE:.1f} s" for name in used]
                lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        lines += ["| all samples | " + " | ".join(
            f"{sum(counts[name].values()) / RATE:.1f} s" for name in used) + " |", ""]
    return lines


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
