"""What the benchmarks share: `wacdc` run as the operator runs it (a process of its own,
timed from start to exit), and private servers for a module run on its own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def run_wacdc(args: list[str], env: Mapping[str, str], profile: Path | None = None) -> dict:
    """`wacdc <args>` to its exit: seconds, peak RSS (MiB), CPU seconds and its stderr;
    RuntimeError with the end of its stderr when it fails. With `profile`, under py-spy
    (collapsed stacks into that file; slower: not a timing)."""
    command = [sys.executable, "-m", "wacdc.cli", *args]
    if profile:
        # --subprocesses: WACDC_DECODE_IN=process's decode child is sampled too.
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses",
                   "-r", "250", "-f", "raw", "-o", str(profile), "--", *command]
    started = time.monotonic()
    proc = subprocess.Popen(command, env=dict(env), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if status:
        raise RuntimeError(f"wacdc {' '.join(args)} failed ({status}): {err[-3000:]}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "stderr": err}


@contextlib.contextmanager
def private_servers(flavour: str = "mariadb") -> Iterator[tuple[Any, Any]]:
    """(source, PostgreSQL) started for a module run on its own; removed afterwards."""
    for entry in (str(REPO / "src"), str(REPO)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from wacdc.devtools.embedded import MariaDBServer, MySQLServer, PostgresServer
    source = MariaDBServer() if flavour == "mariadb" else MySQLServer()
    pg = PostgresServer()
    try:
        source.start()
        pg.start()
        yield source, pg
    finally:
        source.cleanup()
        pg.cleanup()
