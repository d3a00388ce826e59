#!/usr/bin/python
"""Ansible module: the migration's preflight checks (MISSION.md phase 1)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_preflight
short_description: Check that every server is reachable and the data is ready to migrate
description:
  - Runs the checks of the seed's C(migrate preflight) and reports each as passed, warning,
    failed or skipped with one readable sentence and its facts.
  - C(neo4j) version and edition; C(embeddings) count of nodes with an embedding and their
    dimensions (a few odd ones are bad records the copy rejects, a large share fails);
    C(vector_index) presence, state and metric; C(milvus) health, version and the target
    collection; C(postgres) reachability and the right to create the AgentDB schema; C(redis)
    reachability and agent count; C(disk) free space against O(disk_factor) times the embedding
    bytes; C(memory) against what the copy needs; C(copy_estimate) from a measured sample read.
  - Writes nothing anywhere, so check mode runs exactly the same checks.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.NEO4J
  - hybrid_migration.MILVUS
  - hybrid_migration.POSTGRES
  - hybrid_migration.REDIS
  - hybrid_migration.SOURCE
options:
  neo4j:
    required: true
  milvus:
    required: true
  postgres:
    required: true
  redis:
    required: true
  check_connectivity:
    description: Connect to the servers. With C(false) only the local checks (disk, memory) run.
    type: bool
    default: true
  milvus_collection:
    description: Name of the Milvus collection the copy will fill.
    type: str
    default: media_embeddings
  dimension:
    description: Expected embedding dimension; by default the most common one.
    type: int
  metric:
    description: Milvus metric to use when Neo4j has no vector index to take it from.
    type: str
    choices: [COSINE, L2, IP]
  max_mixed_dimension_ratio:
    description: Largest share of embeddings of another dimension that still passes (they are rejected one by one).
    type: float
    default: 0.001
  min_neo4j_version:
    description: Oldest Neo4j accepted.
    type: str
    default: "5.13"
  sample_size:
    description: Embeddings read to measure the read rate for the copy-time estimate.
    type: int
    default: 1000
  disk_paths:
    description: Directories whose file systems must hold O(disk_factor) times the embedding bytes.
    type: list
    elements: path
    default: []
  disk_factor:
    description: Multiple of the embedding bytes required free on each of O(disk_paths).
    type: float
    default: 3.0
  min_memory_mb:
    description: Least available memory accepted, in MiB.
    type: int
    default: 512
  batch_size:
    description: Batch size of the copy, for the memory estimate.
    type: int
    default: 1000
  concurrency:
    description: Parallel writers of the copy, for the memory estimate.
    type: int
    default: 4
  fail_on_failed_checks:
    description: Fail the task when a check fails. The role sets C(false) to print the summary first.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Preflight | Check servers and data
  migration_preflight:
    neo4j: "{{ neo4j_connection }}"
    milvus: "{{ milvus_connection }}"
    postgres: "{{ postgres_connection }}"
    redis: "{{ redis_connection }}"
    source: "{{ neo4j_source }}"
    disk_paths: ["{{ migration_state_dir }}"]
  register: preflight_result
"""

RETURN = r"""
passed:
  description: Whether no check failed.
  returned: always
  type: bool
checks:
  description: Every check with its name, status, readable summary and facts.
  returned: always
  type: list
  elements: dict
  sample: [{name: neo4j, status: passed, summary: "Neo4j 5.26.19 community at bolt://127.0.0.1:7687", facts: {version: 5.26.19}}]
facts:
  description: Everything measured, for later phases (embedding_count, dimension, metric, versions, estimates).
  returned: always
  type: dict
failures:
  description: One line per failed check.
  returned: always
  type: list
  elements: str
summary:
  description: Readable table of the checks.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    milvus_argument_spec,
    neo4j_argument_spec,
    postgres_argument_spec,
    redis_argument_spec,
    source_argument_spec,
)
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.preflight import Preflight, PreflightOptions
from ansible.module_utils.hybrid_migration.settings import (
    MilvusSettings,
    Neo4jSettings,
    PostgresSettings,
    RedisSettings,
    SourceModel,
)


def argument_spec() -> dict:
    return merge_specs(
        {
            "check_connectivity": {"type": "bool", "default": True},
            "milvus_collection": {"type": "str", "default": "media_embeddings"},
            "dimension": {"type": "int"},
            "metric": {"type": "str", "choices": ["COSINE", "L2", "IP"]},
            "max_mixed_dimension_ratio": {"type": "float", "default": 0.001},
            "min_neo4j_version": {"type": "str", "default": "5.13"},
            "sample_size": {"type": "int", "default": 1000},
            "disk_paths": {"type": "list", "elements": "path", "default": []},
            "disk_factor": {"type": "float", "default": 3.0},
            "min_memory_mb": {"type": "int", "default": 512},
            "batch_size": {"type": "int", "default": 1000},
            "concurrency": {"type": "int", "default": 4},
            "fail_on_failed_checks": {"type": "bool", "default": True},
        },
        neo4j_argument_spec(),
        milvus_argument_spec(),
        postgres_argument_spec(),
        redis_argument_spec(),
        source_argument_spec(),
    )


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        preflight = Preflight(
            Neo4jSettings.from_mapping(params["neo4j"]),
            MilvusSettings.from_mapping(params["milvus"]),
            PostgresSettings.from_mapping(params["postgres"]),
            RedisSettings.from_mapping(params["redis"]),
            SourceModel.from_mapping(params["source"]),
            PreflightOptions(
                check_connectivity=params["check_connectivity"],
                sample_size=params["sample_size"],
                disk_paths=tuple(params["disk_paths"]),
                disk_factor=params["disk_factor"],
                min_memory_bytes=params["min_memory_mb"] * 1024 * 1024,
                max_mixed_dimension_ratio=params["max_mixed_dimension_ratio"],
                dimension=params["dimension"],
                metric=params["metric"],
                min_neo4j_version=params["min_neo4j_version"],
                batch_size=params["batch_size"],
                concurrency=params["concurrency"],
                milvus_collection=params["milvus_collection"],
            ),
        )
    except MigrationError as error:
        module.fail_json(msg=f"preflight settings are invalid: {error}")
    report = preflight.run().as_dict()
    if params["fail_on_failed_checks"] and not report["passed"]:
        module.fail_json(msg="preflight failed: " + "; ".join(report["failures"]), changed=False, **report)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
