"""The Grafana dashboard and the alert rules against the sandbox's real Prometheus, after a migration run.

The engines serve a load while run-migration.yml goes up to shadow (the hybrid cutover is the
zero-downtime scenario's); then every panel query must parse and return data, and every rule
must be loaded by Prometheus, healthy, and its expression must evaluate.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .conftest import ROOT
from .test_engine_mode import to_neo4j_only
from .test_milvus_outage import ENDPOINTS, LOAD_ENVIRONMENT, playbook, seed_restored_afterwards  # noqa: F401

PROMETHEUS = "http://127.0.0.1:9090"
DASHBOARD = ROOT / "grafana" / "migration-dashboard.json"
RULES = ROOT / "prometheus" / "migration-rules.yml"
SEED_PANELS = [
    "Migration Progress",
    "Items Migrated Over Time",
    "Neo4j vs Milvus Latency",
    "Dual-Write Success Rate",
    "Error Rate",
    "Storage Mode",
    "Validation Success Rate",
    "Memory Usage",
    "Throughput",
    "ETA Remaining",
    "Milvus Collection Stats",
    "Neo4j Query Performance",
]


def prometheus(path: str, **query: str) -> dict:
    url = f"{PROMETHEUS}{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the sandbox's Prometheus
        return json.load(response)


def evaluate(expression: str) -> list[dict]:
    answer = prometheus("/api/v1/query", query=expression)
    assert answer["status"] == "success", (expression, answer)
    return answer["data"]["result"]


def finite(result: list[dict]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


def test_the_dashboard_has_the_seeds_twelve_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [panel["title"] for panel in dashboard["panels"]] == SEED_PANELS
    assert len({panel["id"] for panel in dashboard["panels"]}) == 12
    assert all(panel["targets"] and panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])


def test_every_panel_query_returns_data_after_a_sandbox_run(seed_restored_afterwards, tmp_path: Path) -> None:  # noqa: F811
    to_neo4j_only()
    load = subprocess.Popen(
        [
            *(sys.executable, "-m", "reference_engine.load", "run", *(f"--endpoint={e}" for e in ENDPOINTS)),
            *("--writes-per-second=10", "--searches-per-second=10", "--pool-size=500"),
            *(f"--stop-file={tmp_path / 'stop'}", f"--journal={tmp_path / 'journal.jsonl'}"),
            f"--summary={tmp_path / 'summary.json'}",
        ],
        cwd=ROOT,
        env={**os.environ, **LOAD_ENVIRONMENT},
        stdout=subprocess.DEVNULL,
    )
    try:
        playbook("run-migration.yml", "--skip-tags", "hybrid", "-e", "full_scan=true")
        time.sleep(12)  # two scrapes of the Pushgateway and the engines after the last push
        dashboard = json.loads(DASHBOARD.read_text())
        empty = []
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                result = evaluate(target["expr"])
                if not result or (panel["type"] != "table" and not finite(result)):
                    empty.append(f"{panel['title']} / {target['refId']}: {target['expr']}")
        assert not empty, "panel queries without data:\n" + "\n".join(empty)
        assert {s["metric"]["job"] for s in evaluate('migration_migrated_items{job=~"migrate_.*"}')} == {
            "migrate_embeddings",
            "migrate_agentdb",
        }
        assert float(evaluate("max(migration_validation_success_rate)")[0]["value"][1]) == 1.0
    finally:
        (tmp_path / "stop").touch()
        load.wait(timeout=120)


def test_every_rule_is_loaded_healthy_and_evaluates() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    groups = prometheus("/api/v1/rules")["data"]["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(rules) == {"MigrationStalled", "DualWriteErrorRateHigh", "ValidationSuccessRateLow"}
    for name, rule in rules.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
        evaluate(rule["query"])
