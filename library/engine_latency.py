#!/usr/bin/python
"""Ansible module: Neo4j vs Milvus search latency and dual-write success over a window, from the engines."""

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_latency
short_description: Measure Neo4j and Milvus search latency, errors and dual-write success from the engines
description:
  - Scrapes C(/metrics) of every live engine instance, waits O(duration_seconds), scrapes again and reports
    what happened in between, summed over the fleet (the seed's C(scripts/monitor-latency.sh)).
  - Per store (Neo4j, Milvus) the number of searches, p50 and p95 latency (interpolated inside the
    histogram buckets, as Prometheus's histogram_quantile does), the mean and the error rate; the speedup
    (Neo4j over Milvus) at p50 and p95; the dual-write success rate; shadow comparisons and their overlap.
  - Milvus figures need searches in Milvus, that is the C(shadow) or C(hybrid) mode.
  - Reads only; the same in check mode. With O(report_file) the figures are also written there as JSON.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.POSTGRES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  duration_seconds:
    description: Length of the window; 0 reports everything since the engines started.
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
  report_file:
    description: Also write the figures to this JSON file.
    type: path
  postgres:
    required: false
"""

EXAMPLES = r"""
- name: Latency | Measure ten minutes of traffic
  engine_latency:
    duration_seconds: 600
    postgres: "{{ postgres_connection }}"
  register: latency_result
"""

RETURN = r"""
neo4j:
  description: C(searches), C(p50_ms), C(p95_ms), C(mean_ms), C(errors), C(error_rate) of Neo4j searches.
  returned: always
  type: dict
milvus:
  description: The same for Milvus searches.
  returned: always
  type: dict
speedup_p50:
  description: Neo4j p50 over Milvus p50 (null without searches on both).
  returned: always
  type: float
speedup_p95:
  description: Neo4j p95 over Milvus p95.
  returned: always
  type: float
dual_write:
  description: C(attempts), C(success), C(milvus_errors), C(success_rate), C(repaired) in the window.
  returned: always
  type: dict
shadow:
  description: C(comparisons) and C(mean_overlap) in the window.
  returned: always
  type: dict
requests:
  description: C(served) and C(failed_5xx) requests in the window.
  returned: always
  type: dict
lines:
  description: The figures as printable lines.
  returned: always
  type: list
  elements: str
"""

import json
import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import merge_specs, postgres_argument_spec
from ansible.module_utils.hybrid_migration.connections import open_postgres
from ansible.module_utils.hybrid_migration.engine_control import fleet_endpoints
from ansible.module_utils.hybrid_migration.engine_metrics import fleet_sum, scrape
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.latency import latency_report, summary_lines
from ansible.module_utils.hybrid_migration.settings import PostgresSettings


def argument_spec() -> dict:
    return merge_specs(
        {
            "duration_seconds": {"type": "float", "default": 60},
            "endpoints": {"type": "list", "elements": "str", "default": []},
            "control_schema": {"type": "str", "default": "migration_control"},
            "fleet": {"type": "str", "default": "recommendation-engine"},
            "liveness_seconds": {"type": "float", "default": 5},
            "report_file": {"type": "path"},
        },
        postgres_argument_spec(required=False),
    )


def endpoints(params: dict) -> list[str]:
    settings = PostgresSettings.from_mapping(params["postgres"]) if params["postgres"] else None
    return fleet_endpoints(
        params["endpoints"],
        (lambda: open_postgres(settings, autocommit=True)) if settings else None,
        params["control_schema"],
        params["fleet"],
        params["liveness_seconds"],
    )


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["duration_seconds"] < 0:
        module.fail_json(msg="duration_seconds must be 0 or more")
    try:
        fleet = endpoints(params)
        started = time.monotonic()
        before = fleet_sum([scrape(url, 5.0) for url in fleet]) if params["duration_seconds"] else {}
        time.sleep(params["duration_seconds"])
        after = fleet_sum([scrape(url, 5.0) for url in fleet])
    except MigrationError as error:
        module.fail_json(msg=str(error))
    report = latency_report(before, after, time.monotonic() - started, len(fleet))
    report["endpoints"] = fleet
    report["lines"] = summary_lines(report)
    if params["report_file"]:
        path = Path(params["report_file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
