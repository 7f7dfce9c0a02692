"""The coordinator of `wacdc run`: snapshot -> catch-up -> streaming, signals, exit codes."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from wacdc import metrics
from wacdc.config import Settings
from wacdc.errors import EXIT_ERROR, EXIT_OK
from wacdc.log import get_logger
from wacdc.snapshot import run_snapshot

log = get_logger("wacdc.daemon")


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM (Railway redeploys) and SIGINT finish the current unit of work, then stop."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal: stopping harder", signal=signal.Signals(signum).name)
            raise KeyboardInterrupt
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(settings: Settings, *, snapshot_only: bool = False,
        exit_when_caught_up: bool = False) -> int:
    stop = threading.Event()
    install_stop_handlers(stop)
    metrics.set_phase("snapshot")
    result = run_snapshot(settings, stop)
    if result.stopped:
        log.info("stopped during the snapshot; run again to continue")
        return EXIT_OK
    if snapshot_only:
        log.info("snapshot done; streaming starts at the next `wacdc run`",
                 start_position=str(result.start_position))
        return EXIT_OK
    log.error("snapshot done, but binlog streaming is not available in this build yet "
              "(issue #5); use `wacdc run --snapshot-only` until then",
              start_position=str(result.start_position))
    return EXIT_ERROR
