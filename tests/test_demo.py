"""`wacdc demo` end to end (short), and that it leaves no process or temp dir behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import REPO, wacdc_env
from wacdc.devtools.embedded import find_oracle_mysql


def _processes_mentioning(paths: list[str]) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # the process ended meanwhile
        if any(p in cmdline for p in paths):
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.parametrize("source", ["mariadb", "mysql"])
def test_short_demo_cuts_over_rolls_back_verifies_and_cleans_up(source: str) -> None:
    if source == "mysql" and find_oracle_mysql() is None:
        if os.environ.get("CI"):
            pytest.fail("no Oracle MySQL on CI (make servers builds it)")
        pytest.skip("no Oracle MySQL here (as root: scripts/mysql-root.sh)")
    env = wacdc_env(None, None)
    result = subprocess.run(
        [sys.executable, "-m", "wacdc.cli", "demo", "--rows", "3000", "--rate", "40",
         "--duration", "3", "--source", source], env=env, cwd=REPO, capture_output=True,
        text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    name = "Oracle MySQL" if source == "mysql" else "MariaDB"
    assert f"starting private {name} and PostgreSQL" in out
    assert "loaded" in out and "into 19 tables" in out
    assert re.search(r"phase streaming\s+lag", out)  # the live view showed streaming
    pause = re.search(r"cutover done: write pause (\d+) ms", out)
    assert pause and int(pause.group(1)) < 1000
    assert "refused by the fence" in out  # the app's next write after the cutover failed
    assert "all 19 table(s) identical" in out and "demo passed" in out
    # The way back: the app wrote PostgreSQL, reverse replication followed it, the rollback
    # fenced PostgreSQL, and the verification after it found both stores identical.
    assert re.search(r"phase reverse\s+reverse lag", out)
    back = re.search(r"rollback done: write pause (\d+) ms; the app wrote (\d+)", out)
    assert back and int(back.group(1)) < 1000 and int(back.group(2)) > 0, out
    assert "refused by the PostgreSQL fence" in out
    assert out.count("all 19 table(s) identical") == 2, out
    assert "campaign_stats" in out  # the PostgreSQL extras were created
    cleaned = re.search(r"cleaned up: servers stopped, (.*) removed", out)
    assert cleaned, out
    dirs = cleaned.group(1).split(", ")
    assert len(dirs) == 2 and all(not Path(d).exists() for d in dirs)
    # By name: a chrooted mysqld names its dir by the path inside its root.
    assert _processes_mentioning([Path(d).name for d in dirs]) == []


def test_the_bridge_demo_redeploys_the_app_under_traffic_without_a_failed_write() -> None:
    source = "mysql" if find_oracle_mysql() is not None else "mariadb"
    result = subprocess.run(
        [sys.executable, "-m", "wacdc.cli", "demo", "--bridge", "--rows", "2000", "--rate",
         "40", "--duration", "4", "--source", source], env=wacdc_env(None, None), cwd=REPO,
        capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "bridge window open" in out
    writes = re.search(r"the window closed: no write failed \((\d[\d,]*) to MySQL, "
                       r"(\d[\d,]*) to PostgreSQL\)", out)
    assert writes and all(int(w.replace(",", "")) > 50 for w in writes.groups()), out
    assert "refused by the fence" not in out  # the old instances stopped before it
    assert out.count("all 19 table(s) identical") == 2, out
