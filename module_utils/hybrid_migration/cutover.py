"""The cutover gates: what must be true before searches move to Milvus.

Measurements are gathered from where they live (the run state for the last validation, the
engines' metrics for dual-write errors and shadow overlap, Milvus for the collection), then
judged by :func:`evaluate`, a pure function, so every refusal names its gate and the value
it measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .engine_metrics import Histogram, Series, value
from .run_state import parse_iso


@dataclass(frozen=True)
class Thresholds:
    """The limits; see the cutover_gates module for each."""

    min_success_rate: float = 0.999
    max_validation_age_hours: float = 24.0
    max_dual_write_error_rate: float = 0.001
    min_shadow_recall: float = 0.95
    min_shadow_comparisons: int = 100


@dataclass
class Gate:
    name: str
    passed: bool
    measured: Any
    threshold: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Measurements:
    """Everything the gates look at."""

    validation: dict[str, Any] = field(default_factory=dict)
    dual_write: dict[str, Any] = field(default_factory=dict)
    shadow: dict[str, Any] = field(default_factory=dict)
    collection: dict[str, Any] = field(default_factory=dict)


def last_validation(state: dict[str, Any]) -> dict[str, Any]:
    """The last recorded validation, its effective rate, and whether it covers the current dual-write period.

    A validation only vouches for Milvus if it finished after the engine last started dual-writing
    (the latest flip out of neo4j_only): writes made before that flip reached Neo4j only.
    """
    entry = (state.get("phases") or {}).get("validate") or {}
    result = entry.get("result") or {}
    fix = result.get("fix") or {}
    rate = fix.get("success_rate_after") if fix.get("applied") else result.get("success_rate")
    dual_write_since = None
    for change in state.get("mode_changes") or []:
        if change.get("from") == "neo4j_only" and change.get("to") != "neo4j_only":
            dual_write_since = change.get("at")
    return {
        "status": entry.get("status"),
        "finished_at": entry.get("finished_at"),
        "check_mode": bool(entry.get("check_mode")),
        "mode": result.get("mode"),
        "success_rate": rate,
        "dual_write_since": dual_write_since,
    }


def _has(series: Series, name: str) -> bool:
    return any(sample == name for sample, _ in series)


def fleet_measurements(series: Series, instances: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dual-write error rate and shadow overlap from the fleet's summed metrics.

    Engines that expose the period gauges (``dual_write_period_*``, ``shadow_period_*``) are judged
    on the current dual-write period and shadow phase; otherwise on the counters, which cover each
    instance's whole life, earlier rolled-back attempts included. ``window`` says which.
    """
    if _has(series, "dual_write_period_attempts"):
        attempts = value(series, "dual_write_period_attempts")
        errors = value(series, "dual_write_period_milvus_errors")
        dual_write_window = "current dual-write period"
    else:
        attempts = value(series, "dual_write_attempts_total")
        errors = value(series, "dual_write_milvus_errors_total")
        dual_write_window = "instance lifetime"
    if _has(series, "shadow_period_comparisons"):
        comparisons = value(series, "shadow_period_comparisons")
        overlap_sum = value(series, "shadow_period_top_k_overlap_sum")
        mean_overlap = overlap_sum / comparisons if comparisons else None
        shadow_window = "current shadow phase"
    else:
        histogram = Histogram.from_series(series, "shadow_top_k_overlap")
        comparisons, mean_overlap = value(series, "shadow_comparisons_total"), histogram.mean
        shadow_window = "instance lifetime"
    dual_write = {
        "instances": instances,
        "window": dual_write_window,
        "attempts": int(attempts),
        "milvus_errors": int(errors),
        "error_rate": round(errors / attempts, 6) if attempts else None,
        "repair_queue": int(value(series, "dual_write_repair_queue_size")),
    }
    shadow = {
        "window": shadow_window,
        "comparisons": int(comparisons),
        "mean_overlap": round(mean_overlap, 4) if mean_overlap is not None else None,
        "milvus_errors": int(value(series, "milvus_search_errors_total")),
    }
    return dual_write, shadow


def evaluate(measured: Measurements, limits: Thresholds, now: datetime) -> list[Gate]:
    """Judge each gate; a gate that could not be measured fails and says why."""
    gates = [_validation_gate(measured.validation, limits, now)]
    dual_write = measured.dual_write
    rate = dual_write.get("error_rate")
    if "error" in dual_write:
        gates.append(Gate("dual_write_error_rate", False, None, limits.max_dual_write_error_rate, dual_write["error"]))
    elif rate is None:
        gates.append(
            Gate(
                "dual_write_error_rate",
                True,
                None,
                limits.max_dual_write_error_rate,
                "no dual writes recorded since the engines started, so no Milvus write has failed",
            )
        )
    else:
        passed = rate < limits.max_dual_write_error_rate
        gates.append(
            Gate(
                "dual_write_error_rate",
                passed,
                rate,
                limits.max_dual_write_error_rate,
                f"dual-write Milvus error rate {rate:.4%} ({dual_write['milvus_errors']} of {dual_write['attempts']})"
                + (" is below " if passed else " is not below ")
                + f"cutover_max_dual_write_error_rate {limits.max_dual_write_error_rate:.4%}",
            )
        )
    gates.append(_shadow_gate(measured.shadow, limits))
    gates.append(_collection_gate(measured.collection))
    return gates


def _validation_gate(validation: dict[str, Any], limits: Thresholds, now: datetime) -> Gate:
    name, threshold = "validation", limits.min_success_rate
    rate = validation.get("success_rate")
    if validation.get("status") != "succeeded" or rate is None or validation.get("check_mode"):
        return Gate(
            name,
            False,
            rate,
            threshold,
            f"no passing validation recorded (last: {validation.get('status') or 'none'}); run validate.yml",
        )
    finished = parse_iso(validation.get("finished_at"))
    if finished is None:
        return Gate(name, False, rate, threshold, "the last validation has no usable finish time; run validate.yml")
    age_hours = (now - finished).total_seconds() / 3600
    since = validation.get("dual_write_since")
    since_moment = parse_iso(since)
    if since_moment is not None and finished < since_moment:
        return Gate(
            name,
            False,
            rate,
            threshold,
            f"the last validation ({validation['finished_at']}) is older than the flip out of neo4j_only ({since}); "
            "writes before that flip are only in Neo4j: run migrate-embeddings.yml (catch-up) and validate.yml",
        )
    if age_hours > limits.max_validation_age_hours:
        return Gate(
            name,
            False,
            rate,
            threshold,
            f"the last validation is {age_hours:.1f} h old, more than cutover_max_validation_age_hours "
            f"{limits.max_validation_age_hours:g}; run validate.yml again",
        )
    passed = rate >= threshold
    return Gate(
        name,
        passed,
        rate,
        threshold,
        f"validation success rate {rate:.4%} ({validation.get('mode')}, {age_hours * 60:.0f} min ago)"
        + (" meets " if passed else " is below ")
        + f"cutover_min_success_rate {threshold:.4%}",
    )


def _shadow_gate(shadow: dict[str, Any], limits: Thresholds) -> Gate:
    name, threshold = "shadow_recall", limits.min_shadow_recall
    if "error" in shadow:
        return Gate(name, False, None, threshold, shadow["error"])
    comparisons, overlap = shadow.get("comparisons", 0), shadow.get("mean_overlap")
    if comparisons < limits.min_shadow_comparisons or overlap is None:
        return Gate(
            name,
            False,
            overlap,
            threshold,
            f"{comparisons} shadow comparisons, fewer than cutover_min_shadow_comparisons "
            f"{limits.min_shadow_comparisons}: run shadow.yml and let it see search traffic",
        )
    passed = overlap >= threshold
    return Gate(
        name,
        passed,
        overlap,
        threshold,
        f"shadow top-k overlap {overlap:.4f} over {comparisons} searches"
        + (" meets " if passed else " is below ")
        + f"cutover_min_shadow_recall {threshold:g}",
    )


def _collection_gate(collection: dict[str, Any]) -> Gate:
    name = "collection_ready"
    if "error" in collection:
        return Gate(name, False, None, "loaded, index built", collection["error"])
    loaded = collection.get("load_state") == "Loaded"
    built = collection.get("index_state") == "Finished" and not collection.get("pending_index_rows")
    measured = {key: collection.get(key) for key in ("load_state", "index_state", "indexed_rows", "total_rows")}
    if loaded and built:
        message = (
            f"collection {collection.get('name')} is loaded and its index is built "
            f"({collection.get('indexed_rows')} of {collection.get('total_rows')} rows)"
        )
    else:
        message = (
            f"collection {collection.get('name')}: load state {collection.get('load_state')}, index "
            f"{collection.get('index_state')} with {collection.get('pending_index_rows')} rows pending; "
            "wait for Milvus or run deploy-milvus.yml"
        )
    return Gate(name, loaded and built, measured, "loaded, index built", message)


def refusal(gates: list[Gate]) -> str:
    failed = [gate for gate in gates if not gate.passed]
    return "; ".join(f"{gate.name}: {gate.message}" for gate in failed)


def collection_state(client: Any, name: str) -> dict[str, Any]:
    """Load state and index progress of a collection, as the gate reads them."""
    if not client.has_collection(name):
        return {"name": name, "error": f"collection {name} does not exist; run deploy-milvus.yml"}
    state = client.get_load_state(name).get("state")
    indexes = client.list_indexes(name)
    index = client.describe_index(name, indexes[0]) if indexes else {}
    return {
        "name": name,
        "load_state": getattr(state, "name", str(state)),
        "index_state": index.get("state"),
        "indexed_rows": index.get("indexed_rows"),
        "total_rows": index.get("total_rows"),
        "pending_index_rows": index.get("pending_index_rows"),
    }
