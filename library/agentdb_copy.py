#!/usr/bin/python
"""Ansible module: the AgentDB copy Redis -> PostgreSQL, resumable, with a verification at the end."""

from __future__ import annotations

DOCUMENTATION = r"""
module: agentdb_copy
short_description: Copy the RL agents, q-values, policies and experiences from Redis to PostgreSQL
description:
  - Brings the PostgreSQL schema O(schema) to its newest version first (versioned DDL, each version applied
    once under an advisory lock), with the tables C(agents), C(q_values) (primary key agent, state, action), C(policies) and
    C(experiences) (primary key agent, stream entry id, indexed by agent and time), with foreign keys to
    C(agents).
  - Reads the Redis layout agent by agent in id order. Agents come from the agents set through SSCAN, stray
    keys under the prefix are found with SCAN (never KEYS), experience streams are read in XRANGE ranges of
    O(batch_size) entries. O(key_patterns) changes where each record lives.
  - Loads each batch in one transaction by COPY. A batch of rows PostgreSQL does not hold yet goes straight
    into the tables; a batch that meets an existing row is rolled back and loaded through temporary staging
    tables and an upsert that only touches rows whose values differ (so are the next 50 batches). Then it
    writes O(checkpoint_file) atomically with the agent and stream entry id reached. An existing checkpoint is resumed; a complete one is not copied again (only
    verified); O(fresh_start) copies everything again, changing no row that is already equal.
  - Records that cannot move (a non-numeric or non-finite q-value or reward, malformed JSON, a missing
    field, a key of the wrong Redis type, an agent listed without a hash, text PostgreSQL cannot store) go to
    O(reject_file) as JSON lines with key, kind and reason; the rest moves. An agent that cannot move takes
    its q-values, policy and experiences with it, listed by key. The task fails after the copy when the share
    of rejected records exceeds O(max_reject_ratio).
  - With O(verify), reads Redis again through the same rules and compares it with PostgreSQL per agent and
    per table (row counts and a checksum of the values); the task fails when they differ. Every agent's
    figures go to O(verification_file).
  - With O(skip_history), experiences are neither copied nor compared.
  - Check mode reads and validates everything and reports the counts it would copy and the records it would
    reject, compares with PostgreSQL when the tables exist, and writes nothing.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.REDIS
  - hybrid_migration.POSTGRES
  - hybrid_migration.COPY_RUN
options:
  redis:
    required: true
  postgres:
    required: true
  schema:
    description: PostgreSQL schema of the AgentDB tables.
    type: str
    default: agentdb
  key_patterns:
    description:
      - Where the records live in Redis; C({prefix}) is the O(redis.key_prefix) and C({id}) the agent id.
      - The keys are C(agents_set), C(agent_hash), C(qvalues_hash), C(policy_string) and C(experiences_stream);
        those not given keep the documented layout.
    type: dict
    default: {}
  batch_size:
    description: Records per transaction, and stream entries per XRANGE call (the seed's --batch-size).
    type: int
    default: 1000
  skip_history:
    description: Leave the experience streams out (the seed's --skip-history).
    type: bool
    default: false
  checkpoint_file:
    description: Checkpoint JSON (agent and entry id reached, counts, timestamps).
    type: path
    required: true
  reject_file:
    description: Reject file, JSON lines with key, kind, reason and a snippet.
    type: path
    required: true
  verification_file:
    description: Where every agent's counts and checksums on both sides are written; empty writes none.
    type: path
  fresh_start:
    description: Ignore the checkpoint and the reject file and copy everything again.
    type: bool
    default: false
  verify:
    description: Compare Redis and PostgreSQL after the copy and fail when they differ.
    type: bool
    default: true
  max_reject_ratio:
    description: Largest share of rejected records that still passes.
    type: float
    default: 0.001
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: AgentDB | Copy the RL state from Redis to PostgreSQL, resuming from the checkpoint if there is one
  agentdb_copy:
    redis: "{{ redis_connection }}"
    postgres: "{{ postgres_connection }}"
    batch_size: 1000
    checkpoint_file: /var/lib/hybrid-migration/agentdb_checkpoint.json
    reject_file: /var/lib/hybrid-migration/agentdb_rejects.jsonl
    verification_file: /var/lib/hybrid-migration/agentdb_verification.json

- name: AgentDB | Agents, q-values and policies only, from another key layout
  agentdb_copy:
    redis: "{{ redis_connection }}"
    postgres: "{{ postgres_connection }}"
    skip_history: true
    key_patterns:
      agents_set: "{prefix}index:agents"
      experiences_stream: "{prefix}{id}:replay"
    checkpoint_file: /var/lib/hybrid-migration/agentdb_checkpoint.json
    reject_file: /var/lib/hybrid-migration/agentdb_rejects.jsonl
"""

RETURN = r"""
complete:
  description: Whether every agent was read and every valid record committed.
  returned: always
  type: bool
started_from:
  description: Where this run started, the beginning or the checkpoint's agent and entry id.
  returned: always
  type: str
schema:
  description: Schema versions before and after, and the versions applied (or that would be, in check mode).
  returned: always
  type: dict
  sample: {schema: agentdb, current_version: 1, target_version: 1, applied: [], changed: false}
agents_total:
  description: Agents in the agents set.
  returned: always
  type: int
experiences_total:
  description: Entries in the agents' experience streams (0 with O(skip_history)).
  returned: always
  type: int
read:
  description: Valid records read in this run per table (in check mode, what would be copied).
  returned: always
  type: dict
  sample: {agents: 1000, q_values: 200000, policies: 1000, experiences: 1000000}
loaded_this_run:
  description: Records upserted in this run per table.
  returned: always
  type: dict
changed_rows:
  description: Rows inserted or updated per table; 0 everywhere when PostgreSQL already held the same values.
  returned: always
  type: dict
rejected:
  description: Distinct rejected records over all runs.
  returned: always
  type: int
rejected_by_kind:
  description: Rejected records per kind.
  returned: always
  type: dict
  sample: {qvalue_not_numeric: 1, experience_bad_json: 1, wrong_type: 1}
reject_ratio:
  description: Rejected records over valid plus rejected ones.
  returned: always
  type: float
experiences_per_second:
  description: Experiences committed per second in this run's copy.
  returned: always
  type: float
verification:
  description:
    - C(equal), per table the rows and checksums on both sides (C(tables)), C(agents_compared),
      C(agents_different), the first differing agents (C(mismatched)) and agents only PostgreSQL holds.
  returned: when O(verify) is true or in check mode
  type: dict
checkpoint:
  description: The checkpoint as written.
  returned: when the copy ran
  type: dict
retries:
  description: Transient failures retried.
  returned: always
  type: int
batches_copied_straight:
  description:
    - Batches whose rows were all new, COPY'd straight into the tables; the others went through staging and the upsert.
  returned: always
  type: int
"""

from dataclasses import asdict
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.agentdb_copy import AgentCopyOptions, AgentDBCopy
from ansible.module_utils.hybrid_migration.agentdb_source import AgentLayout, RedisAgentSource
from ansible.module_utils.hybrid_migration.argument_specs import (
    copy_run_argument_spec,
    merge_specs,
    postgres_argument_spec,
    redis_argument_spec,
)
from ansible.module_utils.hybrid_migration.connections import open_postgres, open_redis
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.metrics import MetricsPusher
from ansible.module_utils.hybrid_migration.retry import RetryPolicy
from ansible.module_utils.hybrid_migration.settings import PostgresSettings, RedisSettings


def argument_spec() -> dict:
    return merge_specs(
        {
            "schema": {"type": "str", "default": "agentdb"},
            "key_patterns": {"type": "dict", "default": {}},
            "batch_size": {"type": "int", "default": 1000},
            "skip_history": {"type": "bool", "default": False},
            "checkpoint_file": {"type": "path", "required": True},
            "reject_file": {"type": "path", "required": True},
            "verification_file": {"type": "path"},
            "fresh_start": {"type": "bool", "default": False},
            "verify": {"type": "bool", "default": True},
            "max_reject_ratio": {"type": "float", "default": 0.001},
        },
        redis_argument_spec(),
        postgres_argument_spec(),
        copy_run_argument_spec(),
    )


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["batch_size"] < 1:
        module.fail_json(msg="batch_size must be at least 1")
    metrics = None
    try:
        redis_settings = RedisSettings.from_mapping(params["redis"])
        postgres_settings = PostgresSettings.from_mapping(params["postgres"])
        layout = AgentLayout.from_mapping(redis_settings.key_prefix, params["key_patterns"])
        retry = RetryPolicy.from_options(params)
        options = AgentCopyOptions(
            checkpoint_file=Path(params["checkpoint_file"]),
            reject_file=Path(params["reject_file"]),
            verification_file=Path(params["verification_file"]) if params["verification_file"] else None,
            schema=params["schema"],
            batch_size=params["batch_size"],
            skip_history=params["skip_history"],
            fresh_start=params["fresh_start"],
            verify=params["verify"],
            max_reject_ratio=params["max_reject_ratio"],
            retry=retry,
            check_mode=module.check_mode,
        )
        if params["pushgateway_url"] and not module.check_mode:
            metrics = MetricsPusher(params["pushgateway_url"], "migrate_agentdb", params["metrics_interval"])
        client = open_redis(redis_settings)
        open_postgres(postgres_settings).close()  # wrong credentials fail here, before anything is read
        try:
            source = RedisAgentSource(client, layout, retry)
            result = asdict(AgentDBCopy(source, lambda: open_postgres(postgres_settings), options, metrics).run())
        finally:
            client.close()
    except MigrationError as error:
        module.fail_json(msg=str(error))
    if metrics is not None:
        result["metrics_push_failures"] = metrics.push_failures
    if result["reject_threshold_exceeded"]:
        module.fail_json(
            msg=(
                f"{result['rejected']} AgentDB records rejected ({result['reject_ratio']:.4%}), above "
                f"max_reject_ratio {params['max_reject_ratio']:.4%}; the valid records were copied; reasons in "
                f"{result['reject_file']}: {result['rejected_by_kind']}"
            ),
            **result,
        )
    verification = result["verification"]
    if params["verify"] and not module.check_mode and verification and not verification.get("equal"):
        different = ", ".join(item["agent"] for item in verification.get("mismatched", [])[:5])
        hint = ""
        if result["batches"] == 0 and result["complete"]:
            hint = (
                "; the checkpoint says the copy finished, so Redis or PostgreSQL changed since: "
                "copy again with -e fresh_start=true"
            )
        module.fail_json(
            msg=(
                f"Redis and PostgreSQL differ for {verification['agents_different']} of "
                f"{verification['agents_compared']} agents (first: {different}); every agent's counts and "
                f"checksums are in {result['verification_file'] or 'the verification result'}{hint}"
            ),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
