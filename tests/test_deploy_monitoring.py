"""The ops monitoring files (deploy/prometheus, deploy/grafana) are well-formed and only
reference metrics the daemon exposes; the alert rules pass their unit tests
(deploy/prometheus/alerts.test.yml, `promtool test rules`). Pure: no servers.

`referenced_metric_names()` and `exposed_metric_names(text)` are reusable: a live test can
pass the text scraped from the daemon's /metrics to `exposed_metric_names`.

promtool is looked up on PATH, then in the cache that scripts/ensure-promtool.sh fills
(`make test` runs it). Without it the promtool tests are skipped, and fail on CI (CI=true).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from tests.support.monitoring import (
    ALERTS,
    DASHBOARD,
    DEPLOY,
    ROOT,
    _alert_rules,
    _load_yaml,
    dashboard_exprs,
    exposed_metric_names,
    referenced_metric_names,
    unknown_metric_names,
)
from wacdc.observe import metrics

ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASHBOARDS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "wacdc.yml"

# Prometheus model.ParseDuration: units largest first, each at most once, non-empty.
DURATION_RE = re.compile(r"^(?!$)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
SEVERITIES = {"warning", "critical"}
ALERT_NAMES = {"WacdcDaemonDown", "WacdcPhaseFailed", "WacdcErrors", "WacdcLagHigh",
               "WacdcLagUnknown", "WacdcLagBytesGrowing", "WacdcApplyStalled",
               "WacdcValuesCoerced", "WacdcReconnectStorm", "WacdcReverseLagHigh"}
RULE_KEYS = {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}


# --- reusable helpers ----------------------------------------------------------------------


def _local_exposition() -> str:
    metrics.set_phase("streaming")
    return generate_latest(metrics.REGISTRY).decode()


# --- metric names --------------------------------------------------------------------------


def test_exposed_metric_names_parses_the_exposition():
    names = exposed_metric_names(_local_exposition())
    for expected in ("wacdc_phase", "wacdc_lag_seconds", "wacdc_rows_applied_total",
                     "wacdc_transactions_total", "wacdc_apply_batch_seconds_bucket",
                     "wacdc_apply_batch_seconds_sum", "wacdc_apply_batch_seconds_count",
                     "wacdc_snapshot_rows_estimated", "process_resident_memory_bytes",
                     "process_cpu_seconds_total", "wacdc_reverse_lag_seconds",
                   "wacdc_reverse_lag_bytes", "wacdc_reverse_rows_applied_total"):
        assert expected in names
    assert "wacdc_lag_seconds_bucket" not in names
    # OpenMetrics spelling of a counter family (no `_total` in the TYPE line).
    assert "foo_total" in exposed_metric_names("# TYPE foo counter\nfoo_total 1\n")


def test_referenced_metrics_are_exposed_by_the_daemon():
    referenced = referenced_metric_names()
    # Sanity: the scan finds the metrics the files are about.
    assert {"wacdc_phase", "wacdc_lag_seconds", "wacdc_lag_bytes",
            "wacdc_apply_batch_seconds_bucket", "process_cpu_seconds_total"} <= referenced
    missing = unknown_metric_names(referenced, _local_exposition())
    assert not missing, f"deploy/ references metrics the daemon does not expose: {missing}"


def test_an_unknown_metric_is_caught():
    referenced = referenced_metric_names() | {"wacdc_no_such_metric_total"}
    assert unknown_metric_names(referenced, _local_exposition()) == {
        "wacdc_no_such_metric_total"}


# --- Prometheus ----------------------------------------------------------------------------


def test_alert_rules_structure():
    doc = _load_yaml(ALERTS)
    assert isinstance(doc, dict) and set(doc) == {"groups"}
    assert isinstance(doc["groups"], list) and doc["groups"]
    group_names = [group["name"] for group in doc["groups"]]
    assert len(group_names) == len(set(group_names))
    alert_names = []
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules", "labels"}
        assert isinstance(group["rules"], list) and group["rules"]
        for rule in group["rules"]:
            where = rule.get("alert", rule)
            assert set(rule) <= RULE_KEYS, where
            assert isinstance(rule.get("alert"), str) and rule["alert"], where
            assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), where
            assert isinstance(rule.get("for"), str) and DURATION_RE.match(rule["for"]), where
            assert rule["labels"]["severity"] in SEVERITIES, where
            annotations = rule["annotations"]
            assert annotations["summary"].strip() and annotations["description"].strip(), where
            assert all(isinstance(v, str) for v in annotations.values()), where
            # PromQL sanity that a YAML mistake would break.
            assert rule["expr"].count("(") == rule["expr"].count(")"), where
            alert_names.append(rule["alert"])
    assert len(alert_names) == len(set(alert_names)), "duplicate alert names"


def test_alerts_cover_the_required_conditions():
    by_name = {rule["alert"]: rule for rule in _alert_rules()}
    exprs = " ".join(rule["expr"] for rule in by_name.values())
    assert set(by_name) == ALERT_NAMES
    for needle in ("wacdc_lag_seconds > 60", "wacdc_lag_bytes", "wacdc_lag_known == 0",
                   "wacdc_transactions_total", "absent(wacdc_phase", 'up{job="wacdc"}',
                   'wacdc_phase{phase="failed"}', "wacdc_errors_total",
                   "wacdc_values_coerced_total", "wacdc_reconnects_total",
                   "wacdc_reverse_lag_seconds > 60"):
        assert needle in exprs, needle
    assert by_name["WacdcValuesCoerced"]["labels"]["severity"] == "warning"
    assert by_name["WacdcDaemonDown"]["labels"]["severity"] == "critical"


def test_operations_doc_lists_every_alert():
    doc = (ROOT / "docs" / "operations.md").read_text()
    missing = {name for name in ALERT_NAMES if f"`{name}`" not in doc}
    assert not missing, f"docs/operations.md does not describe {missing}"


def test_runbook_urls_point_at_existing_doc_sections():
    for rule in _alert_rules():
        url = rule["annotations"].get("runbook_url")
        if not url:
            continue
        path, _, anchor = url.partition("#")
        doc = ROOT / path
        assert doc.is_file(), url
        if anchor:
            anchors = {_github_anchor(line.lstrip("#"))
                       for line in doc.read_text().splitlines() if line.startswith("#")}
            assert anchor in anchors, url


def _github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_prometheus_config():
    doc = _load_yaml(PROMETHEUS_CONFIG)
    for rule_file in doc["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file(), rule_file
    assert "alerts.yml" in doc["rule_files"]
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    targets = [t for sc in jobs["wacdc"]["static_configs"] for t in sc["targets"]]
    assert targets == ["wacdc:9108"]


def promtool_cache_dir() -> Path:
    """Where scripts/ensure-promtool.sh puts promtool (same rule as the script)."""
    if os.environ.get("WACDC_PROMTOOL_DIR"):
        return Path(os.environ["WACDC_PROMTOOL_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "wacdc" / "promtool"


def promtool_path() -> str | None:
    """promtool on PATH, else the one scripts/ensure-promtool.sh cached, else None."""
    found = shutil.which("promtool")
    if found:
        return found
    cached = promtool_cache_dir() / "promtool"
    return str(cached) if cached.is_file() and os.access(cached, os.X_OK) else None


@pytest.fixture(scope="module")
def promtool() -> str:
    path = promtool_path()
    if path is None:
        reason = (f"promtool is neither on PATH nor in {promtool_cache_dir()}; "
                  "run scripts/ensure-promtool.sh (make test does)")
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required on CI)", pytrace=False)
        pytest.skip(reason)
    return path


def _promtool(promtool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=cwd)


def _output(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def test_promtool_check(promtool: str):
    for args in (["check", "rules", str(ALERTS)], ["check", "config", str(PROMETHEUS_CONFIG)]):
        result = _promtool(promtool, *args)
        assert result.returncode == 0, _output(result)


def test_alert_rule_unit_tests_pass(promtool: str):
    check = _promtool(promtool, "check", "rules", str(ALERTS))
    assert check.returncode == 0, _output(check)
    result = _promtool(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, _output(result)
    assert "SUCCESS" in result.stdout, _output(result)


def test_alert_rule_unit_tests_catch_a_changed_rule(promtool: str, tmp_path: Path):
    """The unit tests pin the rules: the same tests on a copy of alerts.yml whose
    WacdcLagHigh threshold is 120 s instead of 60 s fail, and name that alert."""
    rules = ALERTS.read_text()
    assert rules.count("wacdc_lag_seconds > 60\n") == 1
    (tmp_path / ALERTS.name).write_text(rules.replace("wacdc_lag_seconds > 60\n",
                                                      "wacdc_lag_seconds > 120\n"))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    check = _promtool(promtool, "check", "rules", ALERTS.name, cwd=tmp_path)
    assert check.returncode == 0, _output(check)  # still a valid rule, only a wrong one
    result = _promtool(promtool, "test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0, _output(result)
    assert "alertname: WacdcLagHigh" in result.stdout + result.stderr, _output(result)
    assert "SUCCESS" not in result.stdout, _output(result)


def test_every_alert_has_firing_and_quiet_unit_tests():
    """Structure of alerts.test.yml (no promtool needed): it loads alerts.yml, every alert has
    a case where it fires and cases where it stays quiet, among them all of them on the
    healthy idle daemon; no case names an alert that does not exist."""
    doc = _load_yaml(ALERT_TESTS)
    assert doc["rule_files"] == [ALERTS.name]
    alerts = {rule["alert"] for rule in _alert_rules()}
    fires: set[str] = set()
    quiet: set[str] = set()
    healthy_quiet: set[str] = set()
    for group in doc["tests"]:
        for case in group.get("alert_rule_test", []):
            assert case["alertname"] in alerts, case
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
            for alert in case.get("exp_alerts") or []:
                assert alert["exp_labels"]["severity"] in SEVERITIES, case
                assert {"summary", "description", "runbook_url"} <= set(
                    alert["exp_annotations"]), case
            if group["name"].startswith("healthy idle") and not case.get("exp_alerts"):
                healthy_quiet.add(case["alertname"])
    assert fires == alerts, f"alerts without a firing case: {alerts - fires}"
    assert quiet == alerts, f"alerts without a quiet case: {alerts - quiet}"
    assert healthy_quiet == alerts, f"not checked on the healthy daemon: {alerts - healthy_quiet}"


# --- Grafana -------------------------------------------------------------------------------


def _panels(dashboard: dict) -> list[dict]:
    """Top-level panels plus those nested in collapsed rows."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_dashboard_structure():
    dashboard = json.loads(DASHBOARD.read_text())
    assert {"title", "uid", "panels", "schemaVersion", "templating"} <= set(dashboard)
    assert dashboard["uid"] == "wacdc" and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    panels = _panels(dashboard)
    assert panels
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    for panel in panels:
        where = panel.get("title", panel["id"])
        assert isinstance(panel.get("type"), str) and panel["type"], where
        assert isinstance(panel.get("title"), str) and panel["title"], where
        grid = panel["gridPos"]
        for key in ("x", "y", "w", "h"):
            assert isinstance(grid[key], int) and not isinstance(grid[key], bool), where
        assert grid["x"] >= 0 and grid["y"] >= 0 and grid["w"] > 0 and grid["h"] > 0, where
        assert grid["x"] + grid["w"] <= 24, where
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", where
        assert panel["targets"], where
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            assert isinstance(target["refId"], str) and target["refId"], where
            assert isinstance(target["expr"], str) and target["expr"].strip(), where
            assert target["expr"].count("(") == target["expr"].count(")"), where
            assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}"


def test_dashboard_panels_do_not_overlap():
    occupied: dict[tuple[int, int], str] = {}
    for panel in _panels(json.loads(DASHBOARD.read_text())):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, (panel["title"], occupied.get((x, y)))
                occupied[(x, y)] = panel["title"]


def test_dashboard_covers_the_required_metrics():
    exprs = " ".join(dashboard_exprs())
    for needle in ("wacdc_phase", "wacdc_lag_seconds", "wacdc_lag_bytes", "wacdc_cutover_ready",
                   "sum by (table, op) (rate(wacdc_rows_applied_total[1m]))",
                   "wacdc_transactions_total", "histogram_quantile(0.5",
                   "histogram_quantile(0.99", "wacdc_apply_batch_seconds_bucket",
                   "wacdc_snapshot_rows_total", "wacdc_snapshot_rows_estimated",
                   "wacdc_reconnects_total", "wacdc_errors_total", "wacdc_values_coerced_total",
                   "wacdc_cutover_freeze_seconds", "process_resident_memory_bytes",
                   "process_cpu_seconds_total", "wacdc_reverse_lag_seconds",
                   "wacdc_reverse_lag_bytes", "wacdc_reverse_rows_applied_total"):
        assert needle in exprs, needle


def test_grafana_provisioning():
    datasources = _load_yaml(GRAFANA_DATASOURCES)
    assert datasources["apiVersion"] == 1
    (prometheus,) = [d for d in datasources["datasources"] if d["type"] == "prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    providers = _load_yaml(GRAFANA_DASHBOARDS)
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
