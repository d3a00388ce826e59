#!/usr/bin/python
"""Ansible module: the batched, checkpointed embedding copy Neo4j -> Milvus."""

from __future__ import annotations

DOCUMENTATION = r"""
module: embeddings_copy
short_description: Copy embeddings from Neo4j to Milvus in batches, checkpointed and resumable
description:
  - Reads the embeddings in a stable order (keyset pagination on the id property), validates each row,
    converts the vectors to float32 once with numpy and upserts batches into the Milvus collection
    with O(concurrency) parallel writers. Upserts are keyed on the source id, so replaying a batch
    is harmless.
  - Writes O(checkpoint_file) atomically after each batch; with parallel writers it only advances to the
    highest id below which every batch is acknowledged. An existing checkpoint is resumed
    automatically; O(resume_from) starts after a given id; O(fresh_start) ignores the checkpoint.
  - Rows that cannot move (no embedding, wrong dimension, NaN or Inf, not numeric, missing, empty,
    duplicate or over-long id) go to O(reject_file) as JSON lines with id, kind, reason and a short
    snippet; everything else still moves. The task fails after copying when the share of rejected
    rows exceeds O(max_reject_ratio).
  - Transient failures (Milvus or Neo4j unavailable, timeouts) are retried with bounded exponential
    backoff; past the bound the task fails with the checkpoint intact and the command to resume.
  - Pushes progress to the Pushgateway every O(metrics_interval) seconds, so a copy started with
    C(async) and C(poll 0) can be followed.
  - Check mode reads and validates everything and reports what it would copy and reject, writing
    nothing to Milvus, the checkpoint or the reject file.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.NEO4J
  - hybrid_migration.MILVUS
  - hybrid_migration.SOURCE
  - hybrid_migration.COPY_RUN
options:
  neo4j:
    required: true
  milvus:
    required: true
  collection:
    description:
      - Target collection; it must exist (milvus_collection). Its dimension and id length apply.
      - In check mode a missing collection is allowed (a dry run of the whole migration), with the Neo4j
        vector index's dimension.
    type: str
    default: media_embeddings
  batch_size:
    description: Rows per batch.
    type: int
    default: 1000
  concurrency:
    description: Batches written in parallel.
    type: int
    default: 4
  max_rows_in_flight:
    description:
      - Upper bound on the rows being written at once; with large batches fewer than O(concurrency)
        upserts run in parallel, so memory stays bounded (at batch size 5000, two).
    type: int
    default: 10000
  read_page_size:
    description:
      - Rows read from Neo4j per query, independent of O(batch_size) (the rows per upsert and checkpoint).
        Pages of this size are fast to read and keep the Python memory of a page small.
    type: int
    default: 1000
  checkpoint_file:
    description: Checkpoint JSON (C(last_id), counts, timestamps).
    type: path
    required: true
  reject_file:
    description: Reject file, JSON lines.
    type: path
    required: true
  resume_from:
    description: Start after this id instead of where the checkpoint says.
    type: str
  fresh_start:
    description: Ignore the checkpoint and the reject file and copy everything again.
    type: bool
    default: false
  max_reject_ratio:
    description: Largest share of rejected rows that still passes.
    type: float
    default: 0.001
  catch_up:
    description:
      - After the copy, re-copy the nodes whose updated-at property (O(source.updated_at_property)) is at or
        after the moment the copy started, in passes until one finds nothing Milvus lacks. A later run
        catches up from where the last catch-up ended. Rows Milvus already holds with the same stamp
        (written by dual-write) are not written again.
      - When no node has the property, the result says so; validation with repair is then the safety net.
    type: bool
    default: true
  catch_up_max_passes:
    description: Most catch-up passes; when changes still arrive after them, dual-write carries them.
    type: int
    default: 10
  catch_up_clock_skew_ms:
    description:
      - Margin subtracted from each catch-up moment, for clocks of the writers that run behind this
        host's clock (updated-at is set by whoever writes to Neo4j).
    type: int
    default: 60000
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Migrate | Copy the embeddings, resuming from the checkpoint if there is one
  embeddings_copy:
    neo4j: "{{ neo4j_connection }}"
    milvus: "{{ milvus_connection }}"
    source: "{{ neo4j_source }}"
    collection: media_embeddings
    batch_size: 1000
    concurrency: 4
    checkpoint_file: /var/lib/hybrid-migration/migration_checkpoint.json
    reject_file: /var/lib/hybrid-migration/embeddings_rejects.jsonl
    pushgateway_url: http://pushgateway:9091
  async: 7200
  poll: 0
"""

RETURN = r"""
complete:
  description: Whether every row was read and every valid row acknowledged by Milvus.
  returned: always
  type: bool
started_from:
  description: Where this run started, the beginning, the checkpoint or C(resume_from).
  returned: always
  type: str
total:
  description: Nodes under the label.
  returned: always
  type: int
read:
  description: Rows read in this run.
  returned: always
  type: int
copied_this_run:
  description: Rows upserted in this run (in check mode, rows that would be).
  returned: always
  type: int
migrated:
  description: Rows in Milvus according to the checkpoint, over all runs.
  returned: always
  type: int
rejected:
  description: Distinct rejected rows, over all runs.
  returned: always
  type: int
rejected_by_kind:
  description: Rejected rows per kind.
  returned: always
  type: dict
  sample: {missing_embedding: 1, not_finite: 2, wrong_dimension: 2}
reject_ratio:
  description: Rejected rows over migrated plus rejected.
  returned: always
  type: float
retries:
  description: Transient failures retried.
  returned: always
  type: int
items_per_second:
  description: Copy rate of this run.
  returned: always
  type: float
checkpoint:
  description: The checkpoint as written.
  returned: always
  type: dict
catch_up:
  description:
    - The catch-up pass; C(available) false with a C(reason) when the data has no updated-at property.
    - C(passes), C(changed_rows) (rows changed since the moment), C(copied), C(already_current) (Milvus had
      the same stamp), C(rejected), C(settled) (the last pass found nothing to copy), C(indexed) (a range
      index serves the scan), C(since_epoch_ms), C(caught_up_to_epoch_ms), C(message).
  returned: when O(catch_up) is true and the collection exists
  type: dict
  sample: {available: true, passes: 2, changed_rows: 57, copied: 57, already_current: 0, settled: true}
"""

from dataclasses import asdict
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    copy_run_argument_spec,
    merge_specs,
    milvus_argument_spec,
    neo4j_argument_spec,
    source_argument_spec,
)
from ansible.module_utils.hybrid_migration.catch_up import CatchUp, CatchUpOptions
from ansible.module_utils.hybrid_migration.connections import open_milvus, open_neo4j
from ansible.module_utils.hybrid_migration.embeddings_copy import CopyOptions, EmbeddingsCopy
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.metrics import MetricsPusher
from ansible.module_utils.hybrid_migration.milvus_collection import observe
from ansible.module_utils.hybrid_migration.milvus_reader import MilvusRows
from ansible.module_utils.hybrid_migration.milvus_writer import MilvusWriter
from ansible.module_utils.hybrid_migration.neo4j_source import EmbeddingLookup, vector_index_info
from ansible.module_utils.hybrid_migration.retry import RetryPolicy
from ansible.module_utils.hybrid_migration.settings import MilvusSettings, Neo4jSettings, SourceModel


def argument_spec() -> dict:
    return merge_specs(
        {
            "collection": {"type": "str", "default": "media_embeddings"},
            "batch_size": {"type": "int", "default": 1000},
            "concurrency": {"type": "int", "default": 4},
            "read_page_size": {"type": "int", "default": 1000},
            "max_rows_in_flight": {"type": "int", "default": 10000},
            "checkpoint_file": {"type": "path", "required": True},
            "reject_file": {"type": "path", "required": True},
            "resume_from": {"type": "str"},
            "fresh_start": {"type": "bool", "default": False},
            "max_reject_ratio": {"type": "float", "default": 0.001},
            "catch_up": {"type": "bool", "default": True},
            "catch_up_max_passes": {"type": "int", "default": 10},
            "catch_up_clock_skew_ms": {"type": "int", "default": 60000},
        },
        neo4j_argument_spec(),
        milvus_argument_spec(),
        source_argument_spec(),
        copy_run_argument_spec(),
    )


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if min(params["batch_size"], params["concurrency"], params["read_page_size"]) < 1:
        module.fail_json(msg="batch_size, concurrency and read_page_size must be at least 1")
    try:
        neo4j_settings = Neo4jSettings.from_mapping(params["neo4j"])
        milvus_settings = MilvusSettings.from_mapping(params["milvus"])
        client = open_milvus(milvus_settings)
        target = observe(client, params["collection"])
        driver = open_neo4j(neo4j_settings)
        model = SourceModel.from_mapping(params["source"])
        dimension = target.dimension
        if dimension is None and module.check_mode:
            # A dry run of the whole migration: deploy would create the collection with the index's dimension.
            index = vector_index_info(driver, neo4j_settings.database, model.vector_index)
            dimension = (index or {}).get("dimension")
        if dimension is None:
            driver.close()
            module.fail_json(
                msg=f"Milvus collection {params['collection']!r} does not exist; "
                "run ansible-playbook playbooks/deploy-milvus.yml first"
            )
        options = CopyOptions(
            collection=params["collection"],
            dimension=int(dimension),
            id_max_length=target.id_max_length or 512,
            checkpoint_file=Path(params["checkpoint_file"]),
            reject_file=Path(params["reject_file"]),
            batch_size=params["batch_size"],
            concurrency=params["concurrency"],
            read_page_size=params["read_page_size"],
            max_rows_in_flight=params["max_rows_in_flight"],
            resume_from=params["resume_from"] or None,
            fresh_start=params["fresh_start"],
            max_reject_ratio=params["max_reject_ratio"],
            retry=RetryPolicy.from_options(params),
            check_mode=module.check_mode,
        )
        metrics = None
        if params["pushgateway_url"] and not module.check_mode:
            metrics = MetricsPusher(params["pushgateway_url"], "migrate_embeddings", params["metrics_interval"])
        writer = MilvusWriter(
            client, params["collection"], milvus_settings.db_name, timeout=max(60.0, milvus_settings.timeout)
        )
        reader = EmbeddingLookup(driver, neo4j_settings.database, model)
        catch_up = None
        if params["catch_up"] and target.exists:
            catch_up = CatchUp(
                reader,
                MilvusRows(client, params["collection"], milvus_settings.db_name),
                writer,
                CatchUpOptions(
                    dimension=options.dimension,
                    updated_at_property=model.updated_at_property,
                    id_max_length=options.id_max_length,
                    page_size=options.read_page_size,
                    max_passes=params["catch_up_max_passes"],
                    clock_skew_ms=params["catch_up_clock_skew_ms"],
                    retry=options.retry,
                    check_mode=module.check_mode,
                ),
                log=module.log,
            )
        try:
            copy = EmbeddingsCopy(reader, writer, options, metrics, log=module.log, catch_up=catch_up)
            result = asdict(copy.run())
            if result.get("changed") and not module.check_mode:
                # Seal what the copy wrote: sealed segments get the HNSW index, while growing ones are
                # searched through Milvus's interim index (about 0.75 top-10 recall here). Best effort:
                # the rows are written either way, and Milvus seals segments by itself in time.
                try:
                    client.flush(params["collection"], timeout=max(60.0, milvus_settings.timeout))
                    result["flushed"] = True
                except Exception as error:  # a restarted Milvus refuses flushes for a while ("node not match")
                    result["flushed"] = False
                    module.warn(f"Milvus flush after the copy failed ({str(error)[:200]}); it seals segments by itself")
        finally:
            driver.close()
            client.close()
    except MigrationError as error:
        module.fail_json(msg=str(error))
    if metrics is not None:
        result["metrics_push_failures"] = metrics.push_failures
    if result["reject_threshold_exceeded"]:
        module.fail_json(
            msg=(
                f"{result['rejected']} rows rejected ({result['reject_ratio']:.4%}), above max_reject_ratio "
                f"{params['max_reject_ratio']:.4%}; the valid rows were copied; reasons in {result['reject_file']}: "
                f"{result['rejected_by_kind']}"
            ),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
