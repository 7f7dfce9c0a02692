"""The prisma profile's PostgreSQL extras: created at cutover, used by the planner,
the materialized view refreshed CONCURRENTLY on a schedule."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.support.harness import REPO, SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env

FTS = ("SELECT id FROM \"WhatsAppMessage\" WHERE to_tsvector('simple', "
       "coalesce(\"message\", '')) @@ plainto_tsquery('simple', 'goa')")


def _plan(pg, query: str) -> str:  # type: ignore[no-untyped-def]
    with pg.transaction():
        pg.execute("SET LOCAL enable_seqscan = off")  # tiny tables: ask what it *can* use
        return "\n".join(r[0] for r in pg.execute("EXPLAIN " + query).fetchall())


def test_extras_exist_after_cutover_and_are_used(source_db: SourceDb,
                                                 target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=300)
    env = wacdc_env(source_db, target_db)
    result = run_cli("run", env={**env, "WACDC_CUTOVER": "1"}, timeout=180)
    assert result.code == 0, result.output
    with target_db.connect() as pg:
        assert "WhatsAppMessage_message_fts_idx" in _plan(pg, FTS)
        assert "WhatsAppCustomer_tags_gin_idx" in _plan(
            pg, "SELECT id FROM \"WhatsAppCustomer\" WHERE tags @> ARRAY['vip']")
        pg.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY campaign_stats")
        stats = dict(((c, s), n) for c, s, n in pg.execute(
            "SELECT campaign_id, status, recipients FROM campaign_stats").fetchall())
        expected = dict(((c, s), n) for c, s, n in pg.execute(
            'SELECT "campaignId", status, count(*) FROM "WhatsAppCampaignRecipient" '
            "GROUP BY 1, 2").fetchall())
        assert stats == expected and stats
        extras = pg.execute("SELECT extras FROM wacdc.cutover ORDER BY id DESC LIMIT 1"
                            ).fetchone()[0]
        assert set(extras) == {"WhatsAppMessage_message_fts_idx",
                               "WhatsAppCustomer_tags_gin_idx", "campaign_stats"}

    # After the cutover the daemon refreshes the view on a schedule until stopped.
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"],
                            env={**env, "WACDC_MATVIEW_REFRESH": "0.5"}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with target_db.connect() as pg:  # the app now writes PostgreSQL
            campaign = pg.execute('SELECT "campaignId" FROM "WhatsAppCampaignRecipient" '
                                  "LIMIT 1").fetchone()[0]
            pg.execute('INSERT INTO "WhatsAppCampaignRecipient" (id, "campaignId", '
                       '"phoneNumber", status, "updatedAt") VALUES '
                       "('after-cutover', %s, '+7', 'brand-new-status', now())", (campaign,))
            deadline = time.monotonic() + 30
            while not pg.execute("SELECT count(*) FROM campaign_stats WHERE status = "
                                 "'brand-new-status'").fetchone()[0]:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"materialized views refreshed" in err


def test_schema_apply_extras_creates_them_idempotently(source_db: SourceDb,
                                                       target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db)
    for _ in range(2):
        result = run_cli("schema", "--apply", "--extras", env=env)
        assert result.code == 0, result.output
        assert "extra campaign_stats in place" in result.output
    with target_db.connect() as pg:
        names = {r[0] for r in pg.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").fetchall()}
        assert {"WhatsAppMessage_message_fts_idx", "WhatsAppCustomer_tags_gin_idx",
                "campaign_stats_campaign_status_key"} <= names
