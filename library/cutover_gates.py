#!/usr/bin/python
"""Ansible module: measure and judge the gates that stand before the hybrid cutover."""

from __future__ import annotations

DOCUMENTATION = r"""
module: cutover_gates
short_description: Measure and judge the cutover gates (validation, dual-write errors, shadow recall, collection)
description:
  - Reads, never writes. Measures four things and judges each against its limit.
  - C(validation) - the last validation in the run state passed with a success rate of at least
    O(min_success_rate), finished after the engine last left C(neo4j_only) (earlier writes reached Neo4j only),
    and is at most O(max_validation_age_hours) old.
  - C(dual_write_error_rate) - Milvus write errors over dual-write attempts, summed over the live engine
    instances' C(/metrics), is below O(max_dual_write_error_rate). Counted over the current dual-write period
    (C(dual_write_period_*) gauges) where the engines expose it, else over the instances' lifetime counters.
  - C(shadow_recall) - mean top-k overlap of Milvus's answers with Neo4j's over at least
    O(min_shadow_comparisons) shadow comparisons is at least O(min_shadow_recall); over the current shadow
    phase (C(shadow_period_*) gauges) where the engines expose it.
  - C(collection_ready) - the collection is loaded and its index built with no rows pending (waits up to
    O(wait_for_index_seconds) for an index build that is still running).
  - Returns every gate with its measured value; with O(fail_on_refusal) the task fails naming each gate that
    refused and its value. The hybrid playbook decides about C(force_cutover).
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.MILVUS
  - hybrid_migration.POSTGRES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  run_state_file:
    description: Run state that holds the last validation and the storage-mode changes.
    type: path
    required: true
  collection:
    description: Milvus collection the engines will search.
    type: str
    default: media_embeddings
  min_success_rate:
    description: Lowest validation success rate that passes (0 to 1).
    type: float
    default: 0.999
  max_validation_age_hours:
    description: Oldest validation that still counts.
    type: float
    default: 24
  max_dual_write_error_rate:
    description: Dual-write Milvus error rate must be below this (0 to 1).
    type: float
    default: 0.001
  min_shadow_recall:
    description: Lowest mean top-k overlap of shadow comparisons that passes (0 to 1).
    type: float
    default: 0.95
  min_shadow_comparisons:
    description: Shadow comparisons needed before the recall counts.
    type: int
    default: 100
  wait_for_index_seconds:
    description: How long to wait for a running index build before judging the collection.
    type: float
    default: 60
  endpoints:
    description: Engine base URLs; when empty, the addresses live instances registered in the control record.
    type: list
    elements: str
    default: []
  control_schema:
    description: PostgreSQL schema of the control record.
    type: str
    default: migration_control
  fleet:
    description: Engine fleet in the control record.
    type: str
    default: recommendation-engine
  liveness_seconds:
    description: Instances whose heartbeat is older are not asked.
    type: float
    default: 5
  fail_on_refusal:
    description: Fail the task when a gate refuses.
    type: bool
    default: false
  milvus:
    required: true
  postgres:
    required: false
"""

EXAMPLES = r"""
- name: Hybrid | Measure the cutover gates
  cutover_gates:
    run_state_file: "{{ migration_run_state_file }}"
    milvus: "{{ milvus_connection }}"
    postgres: "{{ postgres_connection }}"
    min_success_rate: 0.999
  register: hybrid_gates_result
"""

RETURN = r"""
passed:
  description: Whether every gate passed.
  returned: always
  type: bool
gates:
  description: Each gate with C(name), C(passed), C(measured), C(threshold) and C(message).
  returned: always
  type: list
  elements: dict
refused:
  description: Names of the gates that refused.
  returned: always
  type: list
  elements: str
measurements:
  description: What was measured - C(validation), C(dual_write), C(shadow), C(collection).
  returned: always
  type: dict
message:
  description: Every refusal with its measured value, or that all gates passed.
  returned: always
  type: str
"""

import time
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    milvus_argument_spec,
    postgres_argument_spec,
)
from ansible.module_utils.hybrid_migration.connections import open_milvus, open_postgres
from ansible.module_utils.hybrid_migration.cutover import (
    Measurements,
    Thresholds,
    collection_state,
    evaluate,
    fleet_measurements,
    last_validation,
    refusal,
)
from ansible.module_utils.hybrid_migration.engine_control import fleet_endpoints
from ansible.module_utils.hybrid_migration.engine_metrics import fleet_sum, scrape
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.run_state import load_run_state
from ansible.module_utils.hybrid_migration.settings import MilvusSettings, PostgresSettings


def argument_spec() -> dict:
    return merge_specs(
        {
            "run_state_file": {"type": "path", "required": True},
            "collection": {"type": "str", "default": "media_embeddings"},
            "min_success_rate": {"type": "float", "default": 0.999},
            "max_validation_age_hours": {"type": "float", "default": 24},
            "max_dual_write_error_rate": {"type": "float", "default": 0.001},
            "min_shadow_recall": {"type": "float", "default": 0.95},
            "min_shadow_comparisons": {"type": "int", "default": 100},
            "wait_for_index_seconds": {"type": "float", "default": 60},
            "endpoints": {"type": "list", "elements": "str", "default": []},
            "control_schema": {"type": "str", "default": "migration_control"},
            "fleet": {"type": "str", "default": "recommendation-engine"},
            "liveness_seconds": {"type": "float", "default": 5},
            "fail_on_refusal": {"type": "bool", "default": False},
        },
        milvus_argument_spec(),
        postgres_argument_spec(required=False),
    )


def engine_endpoints(params: dict) -> list[str]:
    settings = PostgresSettings.from_mapping(params["postgres"]) if params["postgres"] else None
    return fleet_endpoints(
        params["endpoints"],
        (lambda: open_postgres(settings, autocommit=True)) if settings else None,
        params["control_schema"],
        params["fleet"],
        params["liveness_seconds"],
    )


def measure_fleet(params: dict, measured: Measurements) -> None:
    try:
        endpoints = engine_endpoints(params)
        measured.dual_write, measured.shadow = fleet_measurements(
            fleet_sum([scrape(endpoint, 5.0) for endpoint in endpoints]), len(endpoints)
        )
    except MigrationError as error:
        measured.dual_write = {"error": f"engine metrics unavailable: {error}"}
        measured.shadow = {"error": f"engine metrics unavailable: {error}"}


def measure_collection(params: dict) -> dict:
    try:
        client = open_milvus(MilvusSettings.from_mapping(params["milvus"]))
    except MigrationError as error:
        return {"name": params["collection"], "error": str(error)}
    try:
        deadline = time.monotonic() + params["wait_for_index_seconds"]
        while True:
            state = collection_state(client, params["collection"])
            building = state.get("index_state") in {"InProgress", "Unissued"} or state.get("pending_index_rows")
            if "error" in state or not building or time.monotonic() >= deadline:
                return state
            time.sleep(2)
    finally:
        client.close()


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        measured = Measurements(validation=last_validation(load_run_state(params["run_state_file"])))
        measure_fleet(params, measured)
        measured.collection = measure_collection(params)
    except MigrationError as error:
        module.fail_json(msg=str(error))
    limits = Thresholds(
        min_success_rate=params["min_success_rate"],
        max_validation_age_hours=params["max_validation_age_hours"],
        max_dual_write_error_rate=params["max_dual_write_error_rate"],
        min_shadow_recall=params["min_shadow_recall"],
        min_shadow_comparisons=params["min_shadow_comparisons"],
    )
    gates = evaluate(measured, limits, datetime.now(UTC))
    refused = [gate.name for gate in gates if not gate.passed]
    result = {
        "changed": False,
        "passed": not refused,
        "gates": [gate.as_dict() for gate in gates],
        "refused": refused,
        "measurements": measured.__dict__,
        "message": refusal(gates) if refused else "every cutover gate passed",
    }
    if refused and params["fail_on_refusal"]:
        module.fail_json(msg=f"cutover refused - {result['message']}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
