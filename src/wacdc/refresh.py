"""After the cutover: the profile's materialized views refreshed on a schedule
(WACDC_MATVIEW_REFRESH), whether the daemon idles (WACDC_REVERSE=0) or replicates in
reverse (a hook between its steps)."""

from __future__ import annotations

import time

import psycopg

from wacdc.config import Settings
from wacdc.errors import ConnectError
from wacdc.log import get_logger, redact
from wacdc.observe import metrics
from wacdc.schema.extras import extras_for, refresh_views
from wacdc.schema.profile import load_profile
from wacdc.sink.pool import TargetPool

log = get_logger("wacdc.daemon")


class ViewRefresher:
    """`due()` refreshes once the interval has passed since the last refresh (or start)."""

    def __init__(self, settings: Settings, pool: TargetPool) -> None:
        self.settings, self.pool = settings, pool
        self.profile = load_profile(settings.profile)
        self.tables = set(settings.tables or self.profile.tables)
        self.interval = settings.matview_refresh
        self.last = time.monotonic()

    @property
    def needed(self) -> bool:
        return self.interval > 0 and any(
            e.refresh for e in extras_for(self.profile, self.tables))

    def refresh(self) -> None:
        try:
            with self.pool.connection() as conn:
                refreshed = refresh_views(conn, self.profile, self.settings.target_schema,
                                          self.tables)
            log.info("materialized views refreshed", views=refreshed)
        except (ConnectError, psycopg.Error) as exc:
            metrics.errors.labels(kind="MatviewRefresh").inc()
            log.warning("materialized view refresh failed; trying again at the next "
                        "interval", error=redact(str(exc)).splitlines()[0])
        self.last = time.monotonic()

    def due(self) -> bool:
        """The reverse loop's hook: never ends it (False)."""
        if self.needed and time.monotonic() - self.last >= self.interval:
            self.refresh()
        return False
