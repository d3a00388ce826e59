#!/usr/bin/python
"""Ansible module: the Milvus collection and HNSW index of the migration's data model."""

from __future__ import annotations

DOCUMENTATION = r"""
module: milvus_collection
short_description: Ensure the Milvus collection for the embeddings, its HNSW index, and load it
description:
  - Ensures the collection of MISSION.md's data model, C(id) VARCHAR primary key without auto id,
    C(embedding) FLOAT_VECTOR of the dimension, C(updated_at) INT64, with an HNSW index, loaded.
  - Dimension and metric come from the Neo4j vector index (cosine to COSINE, euclidean to L2) unless
    O(dimension) and O(metric) are given.
  - An existing collection with an incompatible schema (dimension, metric, primary key type or size,
    missing fields) fails with the differences listed; it is never altered or dropped. Different HNSW
    parameters rebuild the index (release, drop index, create index, load); the data stays.
  - Idempotent. Check mode and diff show what would be created.
  - O(state=absent) drops the collection and its data, only with O(confirm_drop=true); without it the
    task fails and says how many rows it would delete.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.MILVUS
  - hybrid_migration.NEO4J
  - hybrid_migration.SOURCE
options:
  milvus:
    required: true
  neo4j:
    description: Connection to Neo4j, to read the vector index; not needed when O(dimension) and O(metric) are given.
  collection:
    description: Collection name.
    type: str
    default: media_embeddings
  state:
    description: C(present) ensures the collection, C(absent) drops it (destructive, needs O(confirm_drop)).
    type: str
    choices: [present, absent]
    default: present
  confirm_drop:
    description: Confirms that O(state=absent) may delete the collection's data.
    type: bool
    default: false
  dimension:
    description: Vector dimension; by default the Neo4j vector index's.
    type: int
  metric:
    description: Milvus metric; by default from the Neo4j vector index's similarity function.
    type: str
    choices: [COSINE, L2, IP]
  hnsw_profile:
    description: HNSW parameters by name, C(high_accuracy) (M 32, efConstruction 512), C(balanced) (16, 256), C(fast) (8, 128).
    type: str
    choices: [high_accuracy, balanced, fast]
    default: balanced
  hnsw_m:
    description: HNSW M, overriding the profile's.
    type: int
  hnsw_ef_construction:
    description: HNSW efConstruction, overriding the profile's.
    type: int
  id_max_length:
    description: Longest id in bytes the primary key holds.
    type: int
    default: 512
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Sandbox | Drop the collection (deletes its data)
  milvus_collection:
    milvus: "{{ milvus_connection }}"
    collection: media_embeddings
    state: absent
    confirm_drop: true

- name: Deploy | Ensure the collection, dimension and metric from the Neo4j vector index
  milvus_collection:
    milvus: "{{ milvus_connection }}"
    neo4j: "{{ neo4j_connection }}"
    source: "{{ neo4j_source }}"
    collection: media_embeddings
    hnsw_profile: balanced

- name: Deploy | Ensure the collection with explicit settings
  milvus_collection:
    milvus: "{{ milvus_connection }}"
    collection: media_embeddings
    dimension: 768
    metric: COSINE
    hnsw_m: 24
    hnsw_ef_construction: 300
"""

RETURN = r"""
changed:
  description: Whether the collection was (or in check mode would be) created, changed or dropped.
  returned: always
  type: bool
actions:
  description: What was (or in check mode would be) done, in order.
  returned: always
  type: list
  elements: str
  sample: [create collection, create index, load collection]
collection:
  description: The desired collection, fields and index.
  returned: with O(state=present)
  type: dict
before:
  description: What Milvus described before the task.
  returned: always
  type: dict
row_count:
  description: Rows in the collection before the task.
  returned: always
  type: int
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    milvus_argument_spec,
    neo4j_argument_spec,
    source_argument_spec,
)
from ansible.module_utils.hybrid_migration.connections import open_milvus, open_neo4j
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.milvus_collection import drop_collection, ensure_collection, resolve_spec
from ansible.module_utils.hybrid_migration.neo4j_source import vector_index_info
from ansible.module_utils.hybrid_migration.settings import MilvusSettings, Neo4jSettings, SourceModel


def argument_spec() -> dict:
    return merge_specs(
        {
            "collection": {"type": "str", "default": "media_embeddings"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "confirm_drop": {"type": "bool", "default": False},
            "dimension": {"type": "int"},
            "metric": {"type": "str", "choices": ["COSINE", "L2", "IP"]},
            "hnsw_profile": {"type": "str", "choices": ["high_accuracy", "balanced", "fast"], "default": "balanced"},
            "hnsw_m": {"type": "int"},
            "hnsw_ef_construction": {"type": "int"},
            "id_max_length": {"type": "int", "default": 512},
        },
        milvus_argument_spec(),
        neo4j_argument_spec(required=False),
        source_argument_spec(),
    )


def source_index(params: dict) -> dict | None:
    """The Neo4j vector index, read only when dimension or metric is not given."""
    if params["dimension"] and params["metric"]:
        return None
    if not params["neo4j"]:
        return None
    settings = Neo4jSettings.from_mapping(params["neo4j"])
    model = SourceModel.from_mapping(params["source"])
    driver = open_neo4j(settings)
    try:
        return vector_index_info(driver, settings.database, model.vector_index)
    finally:
        driver.close()


def drop(module: AnsibleModule) -> None:
    params = module.params
    try:
        client = open_milvus(MilvusSettings.from_mapping(params["milvus"]))
        try:
            result = drop_collection(client, params["collection"], params["confirm_drop"], module.check_mode)
        finally:
            client.close()
    except MigrationError as error:
        module.fail_json(msg=str(error))
    diff = {"before": f"{params['collection']}: {result['row_count']} rows\n", "after": "(no collection)\n"}
    module.exit_json(diff=diff if result["changed"] else {}, **result)


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["state"] == "absent":
        drop(module)
    try:
        spec = resolve_spec(
            params["collection"],
            source_index(params),
            params["dimension"],
            params["metric"],
            params["hnsw_profile"],
            params["hnsw_m"],
            params["hnsw_ef_construction"],
            params["id_max_length"],
        )
        client = open_milvus(MilvusSettings.from_mapping(params["milvus"]))
        try:
            result = ensure_collection(client, spec, module.check_mode)
        finally:
            client.close()
    except MigrationError as error:
        module.fail_json(msg=str(error))
    before = result["before"]
    diff = {
        "before": json.dumps(before, indent=2, sort_keys=True) + "\n" if before["exists"] else "(no collection)\n",
        "after": json.dumps(result["collection"], indent=2, sort_keys=True) + "\n",
    }
    module.exit_json(diff=diff if result["changed"] else {}, **result)


if __name__ == "__main__":
    main()
