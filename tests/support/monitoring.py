"""Metric names the ops files (alert rules, dashboard) reference, and those the daemon exposes."""


from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


DEPLOY = ROOT / "deploy"


ALERTS = DEPLOY / "prometheus" / "alerts.yml"


DASHBOARD = DEPLOY / "grafana" / "wacdc.json"


METRIC_RE = re.compile(r"\b(wacdc_[a-z_]+|process_[a-z_]+)\b")


TYPE_RE = re.compile(r"^# TYPE (\S+) (\S+)\s*$", re.MULTILINE)


def dashboard_exprs(dashboard: dict | None = None) -> list[str]:
    """Every PromQL `expr` in the dashboard, including those of panels nested in rows."""
    if dashboard is None:
        dashboard = json.loads(DASHBOARD.read_text())
    exprs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return exprs


def referenced_metric_names() -> set[str]:
    """wacdc_* / process_* names in the alert rules (whole file: exprs and annotations alike
    must name real metrics) and in the dashboard's exprs."""
    texts = [ALERTS.read_text(), *dashboard_exprs()]
    return {name for text in texts for name in METRIC_RE.findall(text)}


def exposed_metric_names(text: str) -> set[str]:
    """Every series name that may appear for the metric families in a Prometheus text (or
    OpenMetrics) exposition, from its `# TYPE` lines.

    prometheus_client's text format names a counter family with `_total` in the TYPE line
    (`# TYPE wacdc_transactions_total counter`); OpenMetrics names it without. Both forms are
    accepted. Histogram families add `_bucket`, `_sum`, `_count` (and `_created`), summaries
    `_sum`, `_count` (and `_created`).
    """
    names: set[str] = set()
    for name, kind in TYPE_RE.findall(text):
        names.add(name)
        if kind == "counter":
            base = name.removesuffix("_total")
            names.update({base + "_total", base + "_created"})
        elif kind in ("histogram", "gaugehistogram"):
            names.update(name + s for s in ("_bucket", "_sum", "_count", "_created",
                                            "_gsum", "_gcount"))
        elif kind == "summary":
            names.update(name + s for s in ("_sum", "_count", "_created"))
    return names


def unknown_metric_names(referenced: set[str], exposition: str) -> set[str]:
    return referenced - exposed_metric_names(exposition)


def _load_yaml(path: Path) -> object:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (dev extra)")
    return yaml.safe_load(path.read_text())


def _alert_rules() -> list[dict]:
    doc = _load_yaml(ALERTS)
    return [rule for group in doc["groups"] for rule in group["rules"]]
