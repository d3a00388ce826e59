#!/usr/bin/python
"""Ansible module: the migration report, built from the run state."""

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_report
short_description: Write the migration report (markdown, JSON or YAML) from the run state
description:
  - Builds the report of the whole run from the run state file (M(migration_run_state)) - every phase's
    status, times and counts, the copy's rejects by reason, the validation's categories and gate, the
    catch-up, the storage-mode changes, the HNSW index, the servers' versions - and writes it as
    O(report_format). The shape is documented in C(docs/report.md) and C(docs/report.schema.json).
  - Markdown reads like pgloader's end-of-run summary, a fixed-width table of the phases with read,
    copied, rejected, fixed and time, a totals line, then one section per topic. A phase or topic
    with no record says C(not run).
  - Each server given a connection is asked for its version; one that does not answer is reported as
    C(unreachable) with the reason and its version falls back to the one the preflight phase recorded.
    A server being down never fails the report.
  - The report is dated by the run state's last update, not the clock, so an unchanged run gives the
    same file and the task reports no change. The file is written atomically with mode C(0640).
  - Before writing, the task fails if any password or token it received in a connection option
    would appear in the text.
  - Check mode builds the report and returns it, writing nothing; diff mode shows the old and new text.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.NEO4J
  - hybrid_migration.MILVUS
  - hybrid_migration.POSTGRES
  - hybrid_migration.REDIS
options:
  report_file:
    description: The report to write (the seed's C(--output-file)).
    type: path
    required: true
  report_format:
    description: The report's format (the seed's C(--format)).
    type: str
    choices: [markdown, json, yaml]
    default: markdown
  run_state_file:
    description: The run state file the report is built from (the inventory's C(migration_run_state_file)).
    type: path
    required: true
  neo4j:
    description: Connection to Neo4j, to read its version live; without it, preflight's record is used.
  milvus:
    description: Connection to Milvus, to read its version live; without it, preflight's record is used.
  postgres:
    description: Connection to PostgreSQL, to read its version live; without it, preflight's record is used.
  redis:
    description: Connection to Redis, to read its version live; without it, preflight's record is used.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Report | Write the markdown report, reading every server's version live
  migration_report:
    report_file: /var/lib/hybrid-migration/migration-report.md
    report_format: markdown
    run_state_file: "{{ migration_run_state_file }}"
    neo4j: "{{ neo4j_connection }}"
    milvus: "{{ milvus_connection }}"
    postgres: "{{ postgres_connection }}"
    redis: "{{ redis_connection }}"

- name: Report | Write the JSON report from the run state alone
  migration_report:
    report_file: /var/lib/hybrid-migration/migration-report.json
    report_format: json
    run_state_file: "{{ migration_run_state_file }}"
"""

RETURN = r"""
changed:
  description: Whether the file's content was (in check mode, would be) changed.
  returned: always
  type: bool
report:
  description: The report as data (schema_version 1, see C(docs/report.md)).
  returned: always
  type: dict
  sample:
    schema_version: 1
    as_of: "2025-03-01T12:05:00.000Z"
    run: {run_id: 3f2c9a6e0d7b4c1e8a5f6b7c8d9e0f1a, status: succeeded, started_at: "2025-03-01T12:00:00.000Z",
          finished_at: "2025-03-01T12:05:00.000Z", seconds: 300.0}
    counts: {read: 20017, copied: 20012, rejected: 5, fixed: 0}
report_file:
  description: The report file.
  returned: always
  type: str
report_format:
  description: The report's format.
  returned: always
  type: str
summary:
  description: A few lines about the run for the play's output.
  returned: always
  type: list
  elements: str
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    milvus_argument_spec,
    neo4j_argument_spec,
    postgres_argument_spec,
    redis_argument_spec,
)
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.report import (
    FORMATS,
    SERVERS,
    build_report,
    read_server_versions,
    render,
    render_json,
    secrets_in,
    summary_lines,
)
from ansible.module_utils.hybrid_migration.run_state import load_run_state, write_atomically


def argument_spec() -> dict:
    return merge_specs(
        {
            "report_file": {"type": "path", "required": True},
            "report_format": {"type": "str", "choices": list(FORMATS), "default": "markdown"},
            "run_state_file": {"type": "path", "required": True},
        },
        neo4j_argument_spec(required=False),
        milvus_argument_spec(required=False),
        postgres_argument_spec(required=False),
        redis_argument_spec(required=False),
    )


def received_secrets(params: dict) -> dict[str, str]:
    """Every password and token of the connection options, by option name."""
    return {
        f"{server}.{key}": str(value)
        for server in SERVERS
        for key, value in (params[server] or {}).items()
        if key in ("password", "token") and value
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    path = Path(params["report_file"])
    try:
        run_state = load_run_state(params["run_state_file"])
        versions = read_server_versions({server: params[server] for server in SERVERS})
        report = build_report(run_state, versions)
        text = render(report, params["report_format"])
        leaked = secrets_in(text + render_json(report), received_secrets(params))
        if leaked:
            module.fail_json(msg=f"refusing to write {path}: it would contain the secret of {', '.join(leaked)}")
        try:
            before = path.read_bytes()
        except FileNotFoundError:
            before = None
        changed = before != text.encode("utf-8")
        if changed and not module.check_mode:
            write_atomically(path, text)
    except (MigrationError, OSError) as error:
        module.fail_json(msg=f"cannot write the report {path}: {error}")
    module.exit_json(
        changed=changed,
        report=report,
        report_file=str(path),
        report_format=params["report_format"],
        summary=summary_lines(report),
        diff={
            "before": (before or b"").decode("utf-8", "replace"),
            "after": text,
            "before_header": str(path),
            "after_header": str(path),
        }
        if changed
        else {},
    )


if __name__ == "__main__":
    main()
