from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ansible.module_utils.hybrid_migration.cutover import (
    Gate,
    Measurements,
    Thresholds,
    evaluate,
    fleet_measurements,
    last_validation,
    refusal,
)
from ansible.module_utils.hybrid_migration.engine_metrics import fleet_sum, parse_metrics
from ansible.module_utils.hybrid_migration.run_state import (
    empty_state,
    iso,
    record_mode_change,
    record_phase,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
LIMITS = Thresholds()


def passing_validation(**overrides: Any) -> dict[str, Any]:
    validation = {
        "status": "succeeded",
        "finished_at": iso(T0 - timedelta(hours=1)),
        "check_mode": False,
        "mode": "full",
        "success_rate": 0.9995,
        "dual_write_since": iso(T0 - timedelta(hours=2)),
    }
    validation.update(overrides)
    return validation


def passing_measurements(**overrides: dict[str, Any]) -> Measurements:
    fields: dict[str, Any] = {
        "validation": passing_validation(),
        "dual_write": {"instances": 2, "attempts": 4000, "milvus_errors": 2, "error_rate": 0.0005, "repair_queue": 0},
        "shadow": {"comparisons": 500, "mean_overlap": 0.97, "milvus_errors": 0},
        "collection": {
            "name": "media_embeddings",
            "load_state": "Loaded",
            "index_state": "Finished",
            "indexed_rows": 20012,
            "total_rows": 20012,
            "pending_index_rows": 0,
        },
    }
    fields.update(overrides)
    return Measurements(**fields)


def gate(gates: list[Gate], name: str) -> Gate:
    (found,) = [g for g in gates if g.name == name]
    return found


# last_validation


def test_last_validation_empty_state() -> None:
    assert last_validation(empty_state()) == {
        "status": None,
        "finished_at": None,
        "check_mode": False,
        "mode": None,
        "success_rate": None,
        "dual_write_since": None,
    }


def test_last_validation_uses_rate_after_fix_when_fix_applied() -> None:
    result = {"mode": "full", "success_rate": 0.98, "fix": {"applied": True, "success_rate_after": 0.9997}}
    state, entry = record_phase(empty_state(), "validate", "succeeded", result=result, now=T0)
    found = last_validation(state)
    assert found["success_rate"] == 0.9997
    assert found["status"] == "succeeded"
    assert found["finished_at"] == entry["finished_at"] == "2025-03-01T12:00:00.000Z"
    assert found["mode"] == "full"
    assert found["check_mode"] is False


def test_last_validation_ignores_fix_not_applied() -> None:
    result = {"mode": "sample", "success_rate": 0.98, "fix": {"applied": False, "success_rate_after": 0.9997}}
    state, _ = record_phase(empty_state(), "validate", "succeeded", result=result, check_mode=True, now=T0)
    found = last_validation(state)
    assert found["success_rate"] == 0.98
    assert found["check_mode"] is True
    assert found["mode"] == "sample"


def test_last_validation_dual_write_since_is_latest_flip_out_of_neo4j_only() -> None:
    state = empty_state()
    flips = [
        ("neo4j_only", "dual_write", T0),
        ("dual_write", "shadow", T0 + timedelta(hours=1)),
        ("shadow", "neo4j_only", T0 + timedelta(hours=2)),
        ("neo4j_only", "shadow", T0 + timedelta(hours=3)),
        ("shadow", "hybrid", T0 + timedelta(hours=4)),
        ("hybrid", "neo4j_only", T0 + timedelta(hours=5)),
    ]
    for source, target, moment in flips:
        state, _ = record_mode_change(state, {"from": source, "to": target}, now=moment)
    assert last_validation(state)["dual_write_since"] == iso(T0 + timedelta(hours=3))


def test_last_validation_flip_within_neo4j_only_does_not_count() -> None:
    state = {
        "phases": {},
        "mode_changes": [
            {"from": "neo4j_only", "to": "dual_write", "at": "2025-03-01T10:00:00.000Z"},
            {"from": "neo4j_only", "to": "neo4j_only", "at": "2025-03-01T11:00:00.000Z"},
        ],
    }
    assert last_validation(state)["dual_write_since"] == "2025-03-01T10:00:00.000Z"


# evaluate: the validation gate


def test_evaluate_all_gates_pass() -> None:
    gates = evaluate(passing_measurements(), LIMITS, T0)
    assert [g.name for g in gates] == ["validation", "dual_write_error_rate", "shadow_recall", "collection_ready"]
    assert all(g.passed for g in gates), [g.message for g in gates if not g.passed]
    assert refusal(gates) == ""


def test_validation_gate_passes_with_rate_and_age_in_message() -> None:
    found = gate(evaluate(passing_measurements(), LIMITS, T0), "validation")
    assert found.passed is True
    assert found.measured == 0.9995
    assert found.threshold == 0.999
    assert found.message == (
        "validation success rate 99.9500% (full, 60 min ago) meets cutover_min_success_rate 99.9000%"
    )


def test_validation_gate_rate_equal_to_minimum_passes() -> None:
    measured = passing_measurements(validation=passing_validation(success_rate=0.999))
    assert gate(evaluate(measured, LIMITS, T0), "validation").passed is True


def test_validation_gate_refuses_rate_below_minimum() -> None:
    measured = passing_measurements(validation=passing_validation(success_rate=0.9982))
    found = gate(evaluate(measured, LIMITS, T0), "validation")
    assert found.passed is False
    assert found.measured == 0.9982
    assert "validation success rate 99.8200% (full, 60 min ago) is below cutover_min_success_rate 99.9000%" in (
        found.message
    )


@pytest.mark.parametrize(
    ("validation", "last"),
    [
        ({}, "none"),
        (passing_validation(status="failed"), "failed"),
        (passing_validation(status="running"), "running"),
        (passing_validation(success_rate=None), "succeeded"),
        (passing_validation(check_mode=True), "succeeded"),
    ],
)
def test_validation_gate_refuses_missing_or_unusable_validation(validation: dict[str, Any], last: str) -> None:
    found = gate(evaluate(passing_measurements(validation=validation), LIMITS, T0), "validation")
    assert found.passed is False
    assert found.message == f"no passing validation recorded (last: {last}); run validate.yml"


def test_validation_gate_refuses_validation_older_than_dual_write_start() -> None:
    validation = passing_validation(
        finished_at="2025-03-01T10:00:00.000Z", dual_write_since="2025-03-01T11:00:00.000Z", success_rate=1.0
    )
    found = gate(evaluate(passing_measurements(validation=validation), LIMITS, T0), "validation")
    assert found.passed is False
    assert found.measured == 1.0
    assert found.message.startswith(
        "the last validation (2025-03-01T10:00:00.000Z) is older than the flip out of neo4j_only "
        "(2025-03-01T11:00:00.000Z)"
    )
    assert "migrate-embeddings.yml" in found.message


def test_validation_gate_without_dual_write_start_skips_that_check() -> None:
    validation = passing_validation(dual_write_since=None)
    assert gate(evaluate(passing_measurements(validation=validation), LIMITS, T0), "validation").passed is True


def test_validation_gate_refuses_too_old_validation() -> None:
    validation = passing_validation(
        finished_at=iso(T0 - timedelta(hours=30)), dual_write_since=iso(T0 - timedelta(hours=40))
    )
    found = gate(evaluate(passing_measurements(validation=validation), LIMITS, T0), "validation")
    assert found.passed is False
    assert found.message == (
        "the last validation is 30.0 h old, more than cutover_max_validation_age_hours 24; run validate.yml again"
    )


def test_validation_gate_age_limit_is_configurable() -> None:
    validation = passing_validation(finished_at=iso(T0 - timedelta(hours=3)), dual_write_since=None)
    limits = Thresholds(max_validation_age_hours=2.5)
    found = gate(evaluate(passing_measurements(validation=validation), limits, T0), "validation")
    assert found.passed is False
    assert "3.0 h old, more than cutover_max_validation_age_hours 2.5" in found.message
    relaxed = gate(evaluate(passing_measurements(validation=validation), Thresholds(), T0), "validation")
    assert relaxed.passed is True
    assert "(full, 180 min ago)" in relaxed.message


# evaluate: the dual-write gate


def test_dual_write_gate_with_no_writes_passes() -> None:
    dual_write = {"instances": 2, "attempts": 0, "milvus_errors": 0, "error_rate": None, "repair_queue": 0}
    found = gate(evaluate(passing_measurements(dual_write=dual_write), LIMITS, T0), "dual_write_error_rate")
    assert found.passed is True
    assert found.measured is None
    assert found.threshold == 0.001
    assert "no dual writes recorded" in found.message


def test_dual_write_gate_below_limit_passes_with_counts() -> None:
    found = gate(evaluate(passing_measurements(), LIMITS, T0), "dual_write_error_rate")
    assert found.passed is True
    assert found.measured == 0.0005
    assert found.message == (
        "dual-write Milvus error rate 0.0500% (2 of 4000) is below cutover_max_dual_write_error_rate 0.1000%"
    )


@pytest.mark.parametrize(("errors", "rate"), [(4, 0.001), (40, 0.01)])
def test_dual_write_gate_at_or_above_limit_refuses(errors: int, rate: float) -> None:
    dual_write = {"instances": 2, "attempts": 4000, "milvus_errors": errors, "error_rate": rate, "repair_queue": 3}
    found = gate(evaluate(passing_measurements(dual_write=dual_write), LIMITS, T0), "dual_write_error_rate")
    assert found.passed is False
    assert found.measured == rate
    assert found.message == (
        f"dual-write Milvus error rate {rate:.4%} ({errors} of 4000) is not below "
        "cutover_max_dual_write_error_rate 0.1000%"
    )


def test_dual_write_gate_refuses_when_metrics_unavailable() -> None:
    dual_write = {"error": "engine at http://10.0.0.5:8080 did not answer"}
    found = gate(evaluate(passing_measurements(dual_write=dual_write), LIMITS, T0), "dual_write_error_rate")
    assert found.passed is False
    assert found.measured is None
    assert found.message == "engine at http://10.0.0.5:8080 did not answer"


# evaluate: the shadow gate


@pytest.mark.parametrize("comparisons", [0, 99])
def test_shadow_gate_refuses_too_few_comparisons(comparisons: int) -> None:
    shadow = {"comparisons": comparisons, "mean_overlap": 1.0}
    found = gate(evaluate(passing_measurements(shadow=shadow), LIMITS, T0), "shadow_recall")
    assert found.passed is False
    assert found.measured == 1.0
    assert found.message.startswith(
        f"{comparisons} shadow comparisons, fewer than cutover_min_shadow_comparisons 100: run shadow.yml"
    )


def test_shadow_gate_refuses_without_overlap_figure() -> None:
    found = gate(evaluate(passing_measurements(shadow={"comparisons": 500}), LIMITS, T0), "shadow_recall")
    assert found.passed is False
    assert found.measured is None


def test_shadow_gate_refuses_overlap_below_minimum() -> None:
    shadow = {"comparisons": 500, "mean_overlap": 0.9412}
    found = gate(evaluate(passing_measurements(shadow=shadow), LIMITS, T0), "shadow_recall")
    assert found.passed is False
    assert found.measured == 0.9412
    assert found.message == "shadow top-k overlap 0.9412 over 500 searches is below cutover_min_shadow_recall 0.95"


def test_shadow_gate_passes_at_minimum() -> None:
    shadow = {"comparisons": 100, "mean_overlap": 0.95}
    found = gate(evaluate(passing_measurements(shadow=shadow), LIMITS, T0), "shadow_recall")
    assert found.passed is True
    assert found.message == "shadow top-k overlap 0.9500 over 100 searches meets cutover_min_shadow_recall 0.95"


def test_shadow_gate_refuses_when_metrics_unavailable() -> None:
    found = gate(evaluate(passing_measurements(shadow={"error": "no metrics"}), LIMITS, T0), "shadow_recall")
    assert (found.passed, found.measured, found.message) == (False, None, "no metrics")


# evaluate: the collection gate


def test_collection_gate_passes_when_loaded_and_built() -> None:
    found = gate(evaluate(passing_measurements(), LIMITS, T0), "collection_ready")
    assert found.passed is True
    assert found.measured == {
        "load_state": "Loaded",
        "index_state": "Finished",
        "indexed_rows": 20012,
        "total_rows": 20012,
    }
    assert found.message == "collection media_embeddings is loaded and its index is built (20012 of 20012 rows)"


@pytest.mark.parametrize(
    ("load_state", "index_state", "pending"),
    [("NotLoad", "Finished", 0), ("Loading", "Finished", 0), ("Loaded", "InProgress", 0), ("Loaded", "Finished", 12)],
)
def test_collection_gate_refuses_unloaded_or_unbuilt(load_state: str, index_state: str, pending: int) -> None:
    collection = {
        "name": "media_embeddings",
        "load_state": load_state,
        "index_state": index_state,
        "indexed_rows": 20000,
        "total_rows": 20012,
        "pending_index_rows": pending,
    }
    found = gate(evaluate(passing_measurements(collection=collection), LIMITS, T0), "collection_ready")
    assert found.passed is False
    assert found.message == (
        f"collection media_embeddings: load state {load_state}, index {index_state} with {pending} rows pending; "
        "wait for Milvus or run deploy-milvus.yml"
    )


def test_collection_gate_refuses_error() -> None:
    collection = {"name": "media_embeddings", "error": "collection media_embeddings does not exist"}
    found = gate(evaluate(passing_measurements(collection=collection), LIMITS, T0), "collection_ready")
    assert (found.passed, found.measured) == (False, None)
    assert found.message == "collection media_embeddings does not exist"


# refusal


def test_refusal_joins_only_failed_gates_in_order() -> None:
    measured = passing_measurements(
        validation={},
        shadow={"comparisons": 500, "mean_overlap": 0.5},
    )
    gates = evaluate(measured, LIMITS, T0)
    assert [g.passed for g in gates] == [False, True, False, True]
    text = refusal(gates)
    assert text == (
        "validation: no passing validation recorded (last: none); run validate.yml; "
        "shadow_recall: shadow top-k overlap 0.5000 over 500 searches is below cutover_min_shadow_recall 0.95"
    )
    assert "dual_write_error_rate" not in text
    assert "collection_ready" not in text


def test_gate_as_dict() -> None:
    assert Gate("x", True, 1, 2, "m").as_dict() == {
        "name": "x",
        "passed": True,
        "measured": 1,
        "threshold": 2,
        "message": "m",
    }


# fleet_measurements


def instance_series(attempts: int, errors: int, queue: int, comparisons: int, overlaps: list[float]) -> dict:
    registry = CollectorRegistry()
    Counter("dual_write_attempts", "", registry=registry).inc(attempts)
    Counter("dual_write_milvus_errors", "", registry=registry).inc(errors)
    Gauge("dual_write_repair_queue_size", "", registry=registry).set(queue)
    Counter("shadow_comparisons", "", registry=registry).inc(comparisons)
    Counter("milvus_search_errors", "", registry=registry).inc(1)
    overlap = Histogram("shadow_top_k_overlap", "", buckets=(0.5, 0.9, 1.0), registry=registry)
    for share in overlaps:
        overlap.observe(share)
    return parse_metrics(generate_latest(registry).decode())


def test_fleet_measurements_from_summed_series() -> None:
    series = fleet_sum(
        [
            instance_series(3000, 2, 1, 2, [1.0, 0.8]),
            instance_series(1000, 1, 4, 1, [0.9]),
        ]
    )
    dual_write, shadow = fleet_measurements(series, 2)
    assert dual_write == {
        "instances": 2,
        "window": "instance lifetime",
        "attempts": 4000,
        "milvus_errors": 3,
        "error_rate": 0.00075,
        "repair_queue": 5,
    }
    assert shadow == {"window": "instance lifetime", "comparisons": 3, "mean_overlap": 0.9, "milvus_errors": 2}


def test_fleet_measurements_prefer_the_current_period_over_lifetime_counters() -> None:
    """An outage during an earlier, rolled-back attempt is in the counters but not in the period."""
    registry = CollectorRegistry()
    Counter("dual_write_attempts", "", registry=registry).inc(8000)
    Counter("dual_write_milvus_errors", "", registry=registry).inc(2700)
    Gauge("dual_write_period_attempts", "", registry=registry).set(3000)
    Gauge("dual_write_period_milvus_errors", "", registry=registry).set(0)
    Counter("shadow_comparisons", "", registry=registry).inc(500)
    Histogram("shadow_top_k_overlap", "", buckets=(0.5, 1.0), registry=registry).observe(0.1)
    Gauge("shadow_period_comparisons", "", registry=registry).set(200)
    Gauge("shadow_period_top_k_overlap_sum", "", registry=registry).set(194)
    dual_write, shadow = fleet_measurements(parse_metrics(generate_latest(registry).decode()), 1)
    assert dual_write["window"] == "current dual-write period"
    assert (dual_write["attempts"], dual_write["milvus_errors"], dual_write["error_rate"]) == (3000, 0, 0.0)
    assert shadow == {"window": "current shadow phase", "comparisons": 200, "mean_overlap": 0.97, "milvus_errors": 0}


def test_fleet_measurements_without_traffic() -> None:
    dual_write, shadow = fleet_measurements(instance_series(0, 0, 0, 0, []), 1)
    assert dual_write["error_rate"] is None
    assert dual_write["attempts"] == 0
    assert shadow["comparisons"] == 0
    assert shadow["mean_overlap"] is None
    # Measurements straight from an idle engine: dual-write passes (nothing failed), shadow does not.
    gates = evaluate(passing_measurements(dual_write=dual_write, shadow=shadow), LIMITS, T0)
    assert gate(gates, "dual_write_error_rate").passed is True
    assert gate(gates, "shadow_recall").passed is False


def test_fleet_measurements_feed_evaluate() -> None:
    series = instance_series(1000, 2, 0, 150, [1.0] * 150)
    dual_write, shadow = fleet_measurements(series, 1)
    gates = evaluate(passing_measurements(dual_write=dual_write, shadow=shadow), LIMITS, T0)
    assert gate(gates, "dual_write_error_rate").passed is False
    assert "0.2000% (2 of 1000)" in gate(gates, "dual_write_error_rate").message
    assert gate(gates, "shadow_recall").passed is True
