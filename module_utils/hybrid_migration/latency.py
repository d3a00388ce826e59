"""Search latency of Neo4j against Milvus, from two scrapes of the fleet's metrics."""

from __future__ import annotations

from typing import Any

from .engine_metrics import Histogram, Series, difference, value


def _store(series: Series, histogram: str, errors: str) -> dict[str, Any]:
    latency = Histogram.from_series(series, histogram)
    failed = value(series, errors)
    attempts = latency.count + failed
    p50, p95 = latency.quantile(0.50), latency.quantile(0.95)
    return {
        "searches": int(latency.count),
        "p50_ms": round(p50, 2) if p50 is not None else None,
        "p95_ms": round(p95, 2) if p95 is not None else None,
        "mean_ms": round(latency.mean, 2) if latency.mean is not None else None,
        "errors": int(failed),
        "error_rate": round(failed / attempts, 6) if attempts else None,
    }


def _server_error(labels: dict[str, str]) -> bool:
    """A 5xx answer; a missing or non-numeric status label counts as none."""
    status = labels.get("status", "")
    return status.isdigit() and 500 <= int(status) <= 599


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 2) if numerator and denominator else None


def latency_report(before: Series, after: Series, seconds: float, instances: int) -> dict[str, Any]:
    """What changed between two scrapes: per-store latency quantiles, speedup, errors, dual-write success.

    Quantiles are interpolated inside histogram buckets, as Prometheus's histogram_quantile does.
    """
    window = difference(after, before)
    neo4j = _store(window, "neo4j_search_latency_ms", "neo4j_search_errors_total")
    milvus = _store(window, "milvus_search_latency_ms", "milvus_search_errors_total")
    attempts = value(window, "dual_write_attempts_total")
    success = value(window, "dual_write_success_total")
    overlap = Histogram.from_series(window, "shadow_top_k_overlap")
    requests_failed = sum(
        v for (name, labels), v in window.items() if name == "engine_requests_total" and _server_error(dict(labels))
    )
    return {
        "seconds": round(seconds, 1),
        "instances": instances,
        "neo4j": neo4j,
        "milvus": milvus,
        "speedup_p50": _ratio(neo4j["p50_ms"], milvus["p50_ms"]),
        "speedup_p95": _ratio(neo4j["p95_ms"], milvus["p95_ms"]),
        "dual_write": {
            "attempts": int(attempts),
            "success": int(success),
            "milvus_errors": int(value(window, "dual_write_milvus_errors_total")),
            "success_rate": round(success / attempts, 6) if attempts else None,
            "repaired": int(value(window, "dual_write_repaired_total")),
        },
        "shadow": {
            "comparisons": int(overlap.count),
            "mean_overlap": round(overlap.mean, 4) if overlap.mean is not None else None,
        },
        "requests": {
            "served": int(value(window, "engine_requests_total")),
            "failed_5xx": int(requests_failed),
        },
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report as the lines the playbook prints."""

    def store(name: str) -> str:
        figures = report[name]
        if not figures["searches"]:
            return f"{name}: no searches in the window"
        return (
            f"{name}: {figures['searches']} searches, p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
            f"errors {figures['errors']}"
        )

    dual = report["dual_write"]
    lines = [
        f"window {report['seconds']} s over {report['instances']} engine instance(s)",
        store("neo4j"),
        store("milvus"),
        f"speedup (Neo4j / Milvus): p50 {report['speedup_p50']}x, p95 {report['speedup_p95']}x"
        if report["speedup_p50"]
        else "speedup: needs searches on both stores (shadow or hybrid mode)",
        f"dual-write: {dual['success']} of {dual['attempts']} Milvus writes succeeded"
        + (f" ({dual['success_rate']:.4%})" if dual["success_rate"] is not None else "")
        + f", {dual['repaired']} repaired",
        f"requests: {report['requests']['served']} served, {report['requests']['failed_5xx']} failed (5xx)",
    ]
    if report["shadow"]["comparisons"]:
        lines.append(
            f"shadow: {report['shadow']['comparisons']} comparisons, "
            f"mean top-k overlap {report['shadow']['mean_overlap']}"
        )
    return lines
