#!/usr/bin/python
"""Ansible module: is Milvus equal to Neo4j? Sample or full scan, with optional repair."""

from __future__ import annotations

DOCUMENTATION = r"""
module: embeddings_validate
short_description: Validate the Milvus collection against the Neo4j embeddings, and repair it
description:
  - Compares the vectors in Milvus with the embeddings in Neo4j. The source rows are the rows the copy accepts
    (the same id and embedding rules as M(embeddings_copy)); rows it rejects are counted by reason, and those
    whose embedding has another dimension than the collection are the C(dimension_mismatch) category.
  - Without O(full_scan), O(sample_size) string ids drawn uniformly over the whole label (not the first N) are
    compared; orphans cannot be found this way and are marked as not checked.
  - With O(full_scan), both sides are read in id order and merged page by page in bounded memory, finding ids
    missing in Milvus, orphans in Milvus (absent from Neo4j or without a valid embedding there) and vectors
    that are not equal (L2 distance of at least O(tolerance) after the float32 cast). An id only one side's
    stream shows is confirmed by a point lookup before it is reported.
  - The success rate is matching rows over source rows; below O(min_success_rate) the task fails and says by
    how much.
  - With O(fix_inconsistencies), missing and unequal rows are upserted again from Neo4j and orphans deleted,
    then exactly those ids are read again to confirm; the gate then uses the rate after the repair. In check
    mode it reports what it would fix and writes nothing.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.NEO4J
  - hybrid_migration.MILVUS
  - hybrid_migration.SOURCE
options:
  neo4j:
    required: true
  milvus:
    required: true
  collection:
    description: Collection to validate; its dimension and id length apply.
    type: str
    default: media_embeddings
  sample_size:
    description: Ids to draw when O(full_scan) is false.
    type: int
    default: 1000
  full_scan:
    description: Compare every row of both sides instead of a sample.
    type: bool
    default: false
  min_success_rate:
    description: Lowest share of matching source rows that passes (0 to 1).
    type: float
    default: 0.99
  tolerance:
    description: Largest L2 distance between the two float32 vectors that still counts as equal.
    type: float
    default: 0.00001
  fix_inconsistencies:
    description: Re-upsert missing and unequal rows from Neo4j, delete orphans, then re-check those ids.
    type: bool
    default: false
  pushgateway_url:
    description:
      - Pushgateway that receives the outcome as job C(validate) (C(migration_validation_success_rate) from 0 to 1,
        after any repair, and the gate); empty pushes nothing. Nothing is pushed in check mode.
    type: str
    default: ''
  max_report_samples:
    description: Example ids kept per category.
    type: int
    default: 10
  page_size:
    description: Rows per Milvus read in a full scan (Neo4j is read in pages of 1000).
    type: int
    default: 1000
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Validate | Compare a uniform sample of 1000 ids
  embeddings_validate:
    neo4j: "{{ neo4j_connection }}"
    milvus: "{{ milvus_connection }}"
    source: "{{ neo4j_source }}"
    sample_size: 1000

- name: Validate | Compare everything and repair what differs
  embeddings_validate:
    neo4j: "{{ neo4j_connection }}"
    milvus: "{{ milvus_connection }}"
    source: "{{ neo4j_source }}"
    full_scan: true
    fix_inconsistencies: true
    min_success_rate: 0.999
"""

RETURN = r"""
mode:
  description: C(sample) or C(full_scan).
  returned: always
  type: str
source_rows:
  description: Source rows compared (rows the copy accepts; in a sample, the sampled ones).
  returned: always
  type: int
matching:
  description: Source rows whose vector Milvus holds equal.
  returned: always
  type: int
success_rate:
  description: Matching over source rows, before any repair.
  returned: always
  type: float
passed:
  description: Whether the gate passed (after repair when O(fix_inconsistencies) is set and not in check mode).
  returned: always
  type: bool
categories:
  description:
    - Per category (C(missing_in_milvus), C(vector_mismatch), C(orphan_in_milvus), C(dimension_mismatch)) a
      C(count) and up to O(max_report_samples) example C(samples).
  returned: always
  type: dict
  sample: {missing_in_milvus: {count: 1, samples: [media-0000005]}, orphan_in_milvus: {count: 0, samples: []}}
source_rejected_by_kind:
  description: Source rows the copy rejects, per reason (not counted as failures).
  returned: always
  type: dict
milvus_rows:
  description: Rows read from Milvus (full scan) or counted in it (sample).
  returned: always
  type: int
max_distance:
  description: Largest L2 distance seen between matched vectors.
  returned: always
  type: float
fix:
  description:
    - With O(fix_inconsistencies), C(upserted) and C(deleted) (in check mode, what would be), C(verified)
      and C(remaining) after the re-check, C(remaining_samples), C(success_rate_after), C(applied).
  returned: always
  type: dict
items_per_second:
  description: Source rows compared per second.
  returned: always
  type: float
message:
  description: One line saying what was found, or why the gate failed.
  returned: always
  type: str
"""

import time
from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    milvus_argument_spec,
    neo4j_argument_spec,
    source_argument_spec,
)
from ansible.module_utils.hybrid_migration.connections import open_milvus, open_neo4j
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.metrics import push_once
from ansible.module_utils.hybrid_migration.milvus_collection import observe
from ansible.module_utils.hybrid_migration.milvus_reader import MilvusRows
from ansible.module_utils.hybrid_migration.milvus_writer import MilvusWriter
from ansible.module_utils.hybrid_migration.neo4j_source import EmbeddingLookup
from ansible.module_utils.hybrid_migration.settings import MilvusSettings, Neo4jSettings, SourceModel
from ansible.module_utils.hybrid_migration.source_process import ChildProcessBatches
from ansible.module_utils.hybrid_migration.validation import ValidateOptions, Validation


def argument_spec() -> dict:
    return merge_specs(
        {
            "collection": {"type": "str", "default": "media_embeddings"},
            "sample_size": {"type": "int", "default": 1000},
            "full_scan": {"type": "bool", "default": False},
            "min_success_rate": {"type": "float", "default": 0.99},
            "tolerance": {"type": "float", "default": 0.00001},
            "fix_inconsistencies": {"type": "bool", "default": False},
            "max_report_samples": {"type": "int", "default": 10},
            "pushgateway_url": {"type": "str", "default": ""},
            "page_size": {"type": "int", "default": 1000},
        },
        neo4j_argument_spec(),
        milvus_argument_spec(),
        source_argument_spec(),
    )


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["sample_size"] < 1 or params["page_size"] < 1 or not 0 <= params["min_success_rate"] <= 1:
        module.fail_json(msg="sample_size and page_size must be at least 1, min_success_rate between 0 and 1")
    try:
        milvus_settings = MilvusSettings.from_mapping(params["milvus"])
        neo4j_settings = Neo4jSettings.from_mapping(params["neo4j"])
        client = open_milvus(milvus_settings)
        target = observe(client, params["collection"])
        if not target.exists or target.dimension is None:
            client.close()
            if module.check_mode:
                # A dry run of the whole migration: deploy and copy would have made the collection by now.
                module.exit_json(
                    changed=False,
                    passed=True,
                    skipped_reason="dry run",
                    message=f"check mode: collection {params['collection']!r} does not exist yet; nothing to compare",
                    categories={},
                    source_rejected_by_kind={},
                )
            module.fail_json(
                msg=f"Milvus collection {params['collection']!r} does not exist; nothing to validate "
                "(run playbooks/deploy-milvus.yml and playbooks/migrate-embeddings.yml first)"
            )
        model = SourceModel.from_mapping(params["source"])
        id_max_length = target.id_max_length or 512
        driver = open_neo4j(neo4j_settings)
        try:
            validation = Validation(
                EmbeddingLookup(driver, neo4j_settings.database, model),
                MilvusRows(client, params["collection"], milvus_settings.db_name, max(60.0, milvus_settings.timeout)),
                MilvusWriter(client, params["collection"], milvus_settings.db_name, max(60.0, milvus_settings.timeout)),
                ValidateOptions(
                    dimension=int(target.dimension),
                    id_max_length=id_max_length,
                    full_scan=params["full_scan"],
                    sample_size=params["sample_size"],
                    min_success_rate=params["min_success_rate"],
                    tolerance=params["tolerance"],
                    fix=params["fix_inconsistencies"],
                    max_report_samples=params["max_report_samples"],
                    target_page_size=params["page_size"],
                    check_mode=module.check_mode,
                ),
                log=module.log,
                # A full scan decodes Neo4j's floats in a child process, on the other core.
                source_batches=lambda: ChildProcessBatches(
                    neo4j_settings, model, int(target.dimension or 0), id_max_length
                ),
            )
            result = asdict(validation.run())
        finally:
            driver.close()
            client.close()
    except MigrationError as error:
        module.fail_json(msg=str(error))
    if params["pushgateway_url"] and not module.check_mode and result.get("source_rows"):
        error = push_once(
            params["pushgateway_url"],
            "validate",
            {
                "migration_validation_success_rate": (
                    "Share of source rows Milvus holds equal (0-1), after any repair",
                    fixed["success_rate_after"]
                    if (fixed := result.get("fix") or {}).get("applied")
                    else result["success_rate"],
                ),
                "migration_validation_min_success_rate": ("The gate", params["min_success_rate"]),
                "migration_validation_source_rows": ("Source rows compared", result["source_rows"]),
                "migration_validation_timestamp_seconds": ("When the validation ended", time.time()),
            },
        )
        if error:
            module.warn(f"pushing the validation metrics to {params['pushgateway_url']} failed: {error[:200]}")
    if not result["passed"]:
        module.fail_json(msg=result["message"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
