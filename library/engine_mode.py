#!/usr/bin/python
"""Ansible module: flip the engine fleet's storage mode and wait until every instance serves it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_mode
short_description: Flip the recommendation engine's storage mode, acknowledged by every live instance
description:
  - Sets the storage mode (C(neo4j_only), C(dual_write), C(shadow), C(hybrid)) of an engine fleet and waits
    until every live instance serves it.
  - With O(method=control_record) the mode is written to the live control record in PostgreSQL (schema
    O(control_schema)); each instance polls it, applies the change without a restart and acknowledges the new
    generation. Live means a heartbeat younger than O(liveness_seconds).
  - With O(method=config_file) the mode is written to O(config_file) and O(reload_command) is run (plain
    hosts); each of O(endpoints) must then report the new mode and the digest of that file on C(GET /mode).
  - If an instance has not followed within O(timeout) seconds, the previous mode is put back and the task
    fails naming the instances that did not follow. Nothing is left half-flipped.
  - A forward flip that skips modes (C(neo4j_only) to C(hybrid)) is refused unless O(allow_skip), because
    writes made while not dual-writing are missing from Milvus.
  - With O(verify_reads), every instance is asked for the neighbours of a few items after the flip and each
    answer must come from the mode's read source (Neo4j, or Milvus in C(hybrid)).
  - Check mode reports C(current -> target) and the instances it would wait for; diff shows the two modes.
  - The Kubernetes way (ConfigMap patch and rolling restart) is done by the C(engine_mode) role with
    kubernetes.core, not by this module.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.POSTGRES
  - hybrid_migration.NEO4J
  - hybrid_migration.SOURCE
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  mode:
    description: Storage mode to serve.
    type: str
    required: true
    choices: [neo4j_only, dual_write, shadow, hybrid]
  method:
    description: How the fleet learns its mode.
    type: str
    choices: [control_record, config_file]
    default: control_record
  control_schema:
    description: PostgreSQL schema of the control record (O(method=control_record)).
    type: str
    default: migration_control
  fleet:
    description: Name of the engine fleet in the control record.
    type: str
    default: recommendation-engine
  config_file:
    description: Engine config file to rewrite (O(method=config_file)).
    type: path
  reload_command:
    description: Command that makes the engines re-read O(config_file), such as C(systemctl reload engine).
    type: list
    elements: str
    default: []
  endpoints:
    description:
      - Base URLs of the engine instances. Required with O(method=config_file); with O(method=control_record)
        the addresses the instances registered are used when this is empty.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds every live instance has to acknowledge before the flip is undone.
    type: float
    default: 30
  liveness_seconds:
    description: An instance whose last heartbeat is older than this is not waited for.
    type: float
    default: 5
  min_instances:
    description: Refuse to flip when fewer live instances are registered.
    type: int
    default: 1
  allow_skip:
    description: Allow a forward flip that skips modes (the C(force) of the playbooks).
    type: bool
    default: false
  verify_reads:
    description: After the flip, check that every instance answers searches from the mode's read source.
    type: bool
    default: true
  probe_count:
    description: Items asked about per instance by O(verify_reads) (picked from Neo4j).
    type: int
    default: 3
  dimension:
    description: Embedding dimension, used to pick probe items with a usable embedding.
    type: int
    default: 768
  changed_by:
    description: Who flips, recorded in the control record.
    type: str
    default: ansible
  postgres:
    required: false
  neo4j:
    required: false
"""

EXAMPLES = r"""
- name: Dual-write | Flip the fleet to dual_write
  engine_mode:
    mode: dual_write
    postgres: "{{ postgres_connection }}"
    neo4j: "{{ neo4j_connection }}"
    source: "{{ neo4j_source }}"
    timeout: 30

- name: Plain hosts | Flip through the config file
  engine_mode:
    mode: shadow
    method: config_file
    config_file: /etc/recommendation-engine/storage-mode.yml
    reload_command: [systemctl, reload, recommendation-engine]
    endpoints: [http://10.0.0.11:8080, http://10.0.0.12:8080]
    verify_reads: false
"""

RETURN = r"""
previous_mode:
  description: Mode before the task.
  returned: always
  type: str
mode:
  description: Mode the fleet serves after the task (the previous one again if the flip was undone).
  returned: always
  type: str
generation:
  description: Generation of the control record (or of the config file) now served.
  returned: always
  type: int
instances:
  description: Every registered instance with its mode, generation, heartbeat age and liveness.
  returned: always
  type: list
  elements: dict
acknowledged:
  description: Instances that serve the new mode, each with C(propagation_ms) (acknowledged_at - changed_at).
  returned: always
  type: list
  elements: dict
slowest_propagation_ms:
  description: Longest time an instance took to serve the new mode.
  returned: always
  type: float
reverted:
  description: Whether the flip was undone because an instance did not follow.
  returned: always
  type: bool
read_checks:
  description: With O(verify_reads), C(expected_source), C(checked), C(failed), C(passed) and C(failures).
  returned: when verify_reads and not check mode
  type: dict
message:
  description: One line saying what changed.
  returned: always
  type: str
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    neo4j_argument_spec,
    postgres_argument_spec,
    source_argument_spec,
)
from ansible.module_utils.hybrid_migration.connections import open_neo4j, open_postgres
from ansible.module_utils.hybrid_migration.engine_control import MODES, ControlRecord
from ansible.module_utils.hybrid_migration.engine_mode import (
    ConfigFileFleet,
    ModeSwitchFailed,
    SwitchOptions,
    check_reads,
    probe_ids,
    switch_by_config_file,
    switch_by_control_record,
)
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.settings import Neo4jSettings, PostgresSettings, SourceModel


def argument_spec() -> dict:
    return merge_specs(
        {
            "mode": {"type": "str", "required": True, "choices": list(MODES)},
            "method": {"type": "str", "default": "control_record", "choices": ["control_record", "config_file"]},
            "control_schema": {"type": "str", "default": "migration_control"},
            "fleet": {"type": "str", "default": "recommendation-engine"},
            "config_file": {"type": "path"},
            "reload_command": {"type": "list", "elements": "str", "default": []},
            "endpoints": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "float", "default": 30},
            "liveness_seconds": {"type": "float", "default": 5},
            "min_instances": {"type": "int", "default": 1},
            "allow_skip": {"type": "bool", "default": False},
            "verify_reads": {"type": "bool", "default": True},
            "probe_count": {"type": "int", "default": 3},
            "dimension": {"type": "int", "default": 768},
            "changed_by": {"type": "str", "default": "ansible"},
        },
        postgres_argument_spec(required=False),
        neo4j_argument_spec(required=False),
        source_argument_spec(),
    )


def verify(params: dict, endpoints: list[str], mode: str) -> dict:
    if not params["neo4j"]:
        raise MigrationError("verify_reads needs the neo4j connection to pick items to ask about")
    settings = Neo4jSettings.from_mapping(params["neo4j"])
    driver = open_neo4j(settings)
    try:
        ids = probe_ids(
            driver,
            settings.database,
            SourceModel.from_mapping(params["source"]),
            params["dimension"],
            params["probe_count"],
        )
    finally:
        driver.close()
    if not ids:
        raise MigrationError("no item with a usable embedding to verify reads with")
    return check_reads(endpoints, ids, mode)


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("method", "config_file", ("config_file", "endpoints"))],
    )
    params = module.params
    options = SwitchOptions(
        mode=params["mode"],
        timeout=params["timeout"],
        liveness_seconds=params["liveness_seconds"],
        min_instances=params["min_instances"],
        allow_skip=params["allow_skip"],
        changed_by=params["changed_by"],
        check_mode=module.check_mode,
    )
    control = None
    try:
        if params["method"] == "config_file":
            endpoints = params["endpoints"]
            fleet = ConfigFileFleet(Path(params["config_file"]), params["reload_command"], endpoints)
            result = switch_by_config_file(fleet, options).as_dict()
        else:
            if not params["postgres"]:
                module.fail_json(msg="method=control_record needs the postgres connection of the control record")
            settings = PostgresSettings.from_mapping(params["postgres"])
            control = ControlRecord(
                lambda: open_postgres(settings, autocommit=True), params["control_schema"], params["fleet"]
            )
            switched = switch_by_control_record(control, options)
            result = switched.as_dict()
            endpoints = params["endpoints"] or [
                item["address"] for item in result["instances"] if item["live"] and item["address"]
            ]
        if params["verify_reads"] and not module.check_mode:
            result["read_checks"] = verify(params, endpoints, result["mode"])
            if not result["read_checks"]["passed"]:
                module.fail_json(
                    msg=f"{result['message']}; but reads are not served from {result['read_checks']['expected_source']}"
                    f" on every instance: {result['read_checks']['failures'][:3]}",
                    **result,
                )
    except ModeSwitchFailed as error:
        module.fail_json(msg=str(error), **error.result)
    except MigrationError as error:
        module.fail_json(msg=str(error))
    finally:
        if control is not None:
            control.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
