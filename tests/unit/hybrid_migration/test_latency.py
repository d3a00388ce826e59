from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.hybrid_migration.engine_metrics import Series, fleet_sum, parse_metrics
from ansible.module_utils.hybrid_migration.latency import latency_report, summary_lines
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
OVERLAP_BUCKETS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class Engine:
    """The metrics an engine instance exposes, under the names the report reads."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("engine_requests", "", ["endpoint", "status"], registry=registry)
        self.neo4j = Histogram("neo4j_search_latency_ms", "", buckets=LATENCY_BUCKETS_MS, registry=registry)
        self.milvus = Histogram("milvus_search_latency_ms", "", buckets=LATENCY_BUCKETS_MS, registry=registry)
        self.neo4j_errors = Counter("neo4j_search_errors", "", registry=registry)
        self.milvus_errors = Counter("milvus_search_errors", "", registry=registry)
        self.attempts = Counter("dual_write_attempts", "", registry=registry)
        self.success = Counter("dual_write_success", "", registry=registry)
        self.write_errors = Counter("dual_write_milvus_errors", "", registry=registry)
        self.repaired = Counter("dual_write_repaired", "", registry=registry)
        self.overlap = Histogram("shadow_top_k_overlap", "", buckets=OVERLAP_BUCKETS, registry=registry)

    def scrape(self) -> Series:
        return parse_metrics(generate_latest(self.registry).decode())

    def request(self, status: int, times: int = 1, endpoint: str = "similar") -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc(times)


@pytest.fixture
def window() -> tuple[Series, Series]:
    """Two scrapes of one engine in shadow mode; only what happens between them counts."""
    engine = Engine()
    # Before the window: traffic that must not show in the report.
    for observed in (1000, 2000):
        engine.neo4j.observe(observed)
    engine.milvus.observe(1)
    engine.neo4j_errors.inc(7)
    engine.attempts.inc(10)
    engine.success.inc(5)
    engine.write_errors.inc(5)
    engine.request(500, 9)
    engine.overlap.observe(0.1)
    before = engine.scrape()

    for observed in (30, 40, 45, 60):
        engine.neo4j.observe(observed)
    for observed in (3, 4, 8, 9):
        engine.milvus.observe(observed)
    engine.neo4j_errors.inc(1)
    engine.attempts.inc(200)
    engine.success.inc(199)
    engine.write_errors.inc(1)
    engine.repaired.inc(1)
    for share in (1.0, 0.9, 0.8):
        engine.overlap.observe(share)
    engine.request(200, 8)
    engine.request(404, 1)
    engine.request(503, 2)
    engine.request(500, 1, endpoint="write")
    engine.request(201, 3, endpoint="write")
    return before, engine.scrape()


@pytest.fixture
def report(window: tuple[Series, Series]) -> dict[str, Any]:
    before, after = window
    return latency_report(before, after, 60.04, 1)


def test_report_counts_only_the_window(report: dict[str, Any]) -> None:
    assert report["seconds"] == 60.0
    assert report["instances"] == 1
    assert report["neo4j"]["searches"] == 4
    assert report["milvus"]["searches"] == 4


def test_report_quantiles_interpolate_inside_buckets(report: dict[str, Any]) -> None:
    # Neo4j: 30, 40, 45 in (20, 50], 60 in (50, 100].
    # p50: rank 2 of the 3 in (20, 50] -> 20 + 30 * 2/3 = 40; p95: rank 3.8 -> 50 + 50 * 0.8 = 90.
    assert report["neo4j"]["p50_ms"] == 40.0
    assert report["neo4j"]["p95_ms"] == 90.0
    assert report["neo4j"]["mean_ms"] == 43.75
    # Milvus: 3, 4 in (2, 5], 8, 9 in (5, 10].
    # p50: rank 2 -> top of (2, 5] = 5; p95: rank 3.8 -> 5 + 5 * 1.8/2 = 9.5.
    assert report["milvus"]["p50_ms"] == 5.0
    assert report["milvus"]["p95_ms"] == 9.5
    assert report["milvus"]["mean_ms"] == 6.0


def test_report_speedup(report: dict[str, Any]) -> None:
    assert report["speedup_p50"] == 8.0
    assert report["speedup_p95"] == round(90 / 9.5, 2) == 9.47


def test_report_search_errors(report: dict[str, Any]) -> None:
    assert report["neo4j"]["errors"] == 1
    assert report["neo4j"]["error_rate"] == 0.2
    assert report["milvus"]["errors"] == 0
    assert report["milvus"]["error_rate"] == 0.0


def test_report_dual_write(report: dict[str, Any]) -> None:
    assert report["dual_write"] == {
        "attempts": 200,
        "success": 199,
        "milvus_errors": 1,
        "success_rate": 0.995,
        "repaired": 1,
    }


def test_report_shadow(report: dict[str, Any]) -> None:
    assert report["shadow"] == {"comparisons": 3, "mean_overlap": 0.9}


def test_report_requests_failed_5xx_by_status_label(report: dict[str, Any]) -> None:
    # 8x200 + 404 + 2x503 + 500 + 3x201; the 9 earlier 500s fall before the window.
    assert report["requests"] == {"served": 15, "failed_5xx": 3}


def test_report_counts_only_numeric_5xx_statuses_as_failed() -> None:
    engine = Engine()
    before = engine.scrape()
    for status in ("99", "599", "600", "abc", ""):
        engine.requests.labels(endpoint="similar", status=status).inc()
    assert latency_report(before, engine.scrape(), 10, 1)["requests"]["failed_5xx"] == 1


def test_report_restarted_instance_counts_from_zero() -> None:
    old = Engine()
    for observed in (30, 30, 30):
        old.neo4j.observe(observed)
    old.request(503, 5)
    old.attempts.inc(100)
    old.success.inc(100)
    before = old.scrape()
    restarted = Engine()
    restarted.neo4j.observe(70)
    restarted.request(503, 1)
    restarted.attempts.inc(4)
    restarted.success.inc(3)
    report = latency_report(before, restarted.scrape(), 10, 1)
    assert report["neo4j"]["searches"] == 1
    # The one search in (50, 100]: p50 rank 0.5 -> 50 + 50 * 0.5
    assert report["neo4j"]["p50_ms"] == 75.0
    assert report["requests"]["failed_5xx"] == 1
    assert report["dual_write"]["success_rate"] == 0.75


def test_report_over_a_fleet() -> None:
    engines = [Engine(), Engine()]
    before = fleet_sum([engine.scrape() for engine in engines])
    engines[0].neo4j.observe(15)
    engines[1].neo4j.observe(15)
    engines[1].milvus.observe(1.5)
    engines[0].request(502, 2)
    engines[1].request(503, 1)
    after = fleet_sum([engine.scrape() for engine in engines])
    report = latency_report(before, after, 5, 2)
    assert report["instances"] == 2
    assert report["neo4j"]["searches"] == 2
    assert report["milvus"]["searches"] == 1
    assert report["requests"]["failed_5xx"] == 3


def test_summary_lines(report: dict[str, Any]) -> None:
    assert summary_lines(report) == [
        "window 60.0 s over 1 engine instance(s)",
        "neo4j: 4 searches, p50 40.0 ms, p95 90.0 ms, errors 1",
        "milvus: 4 searches, p50 5.0 ms, p95 9.5 ms, errors 0",
        "speedup (Neo4j / Milvus): p50 8.0x, p95 9.47x",
        "dual-write: 199 of 200 Milvus writes succeeded (99.5000%), 1 repaired",
        "requests: 15 served, 3 failed (5xx)",
        "shadow: 3 comparisons, mean top-k overlap 0.9",
    ]


def test_report_without_milvus_searches() -> None:
    engine = Engine()
    before = engine.scrape()
    engine.neo4j.observe(12)
    engine.request(200)
    report = latency_report(before, engine.scrape(), 30, 1)
    assert report["milvus"] == {
        "searches": 0,
        "p50_ms": None,
        "p95_ms": None,
        "mean_ms": None,
        "errors": 0,
        "error_rate": None,
    }
    assert report["speedup_p50"] is None
    assert report["speedup_p95"] is None
    assert report["dual_write"]["success_rate"] is None
    assert report["shadow"] == {"comparisons": 0, "mean_overlap": None}
    lines = summary_lines(report)
    assert "milvus: no searches in the window" in lines
    assert "speedup: needs searches on both stores (shadow or hybrid mode)" in lines
    assert "dual-write: 0 of 0 Milvus writes succeeded, 0 repaired" in lines
    assert not any(line.startswith("shadow:") for line in lines)
    assert not any(line.startswith("speedup (") for line in lines)
