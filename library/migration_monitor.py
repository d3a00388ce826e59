#!/usr/bin/python
"""Documentation of the migration_monitor action (action_plugins/migration_monitor.py runs it on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_monitor
short_description: Follow a running copy, printing progress every interval until it ends
description:
  - Prints one line every O(interval_secs) while a copy runs, with progress %, migrated / total, items/s, ETA
    and the current phase, read from the copy's checkpoint, the Pushgateway (the job's C(migration_*) gauges)
    and the run state. Every source is optional; a line shows what could be read.
  - Ends when the copy ends, which is when the async job O(async_job_id) finished, when the checkpoint is complete,
    or when the job pushed C(migration_running) 0. It gives up when no copy started within
    O(wait_for_start_seconds), and after O(max_seconds).
  - An action plugin, so it runs on the controller and prints while it waits; a module reports only once, at
    its end. It only reads.
  - In check mode it prints one line, where things stand, and returns.
version_added: "1.0.0"
author: Hybrid migration team
options:
  job:
    description: Which copy to follow.
    type: str
    choices: [migrate_embeddings, migrate_agentdb]
    default: migrate_embeddings
  interval_secs:
    description: Seconds between lines (the seed's --interval-secs).
    type: float
    default: 5.0
  checkpoint_file:
    description: The copy's checkpoint.
    type: path
  pushgateway_url:
    description: Pushgateway the copy pushes to; empty reads the checkpoint only.
    type: str
    default: ''
  run_state_file:
    description: Run state file, for the current phase.
    type: path
  async_job_id:
    description: Async job id of a copy started with C(async) and C(poll 0); followed until it finishes.
    type: str
  wait_for_start_seconds:
    description: Seconds to wait for a copy to start before giving up.
    type: float
    default: 60.0
  max_seconds:
    description: Longest the monitor follows, in seconds.
    type: float
    default: 86400.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Monitor | Follow the embedding copy started with poll 0
  migration_monitor:
    job: migrate_embeddings
    interval_secs: 5
    checkpoint_file: /var/lib/hybrid-migration/migration_checkpoint.json
    pushgateway_url: http://pushgateway:9091
    run_state_file: /var/lib/hybrid-migration/run_state.json
    async_job_id: "{{ copy_job.ansible_job_id }}"
"""

RETURN = r"""
finished:
  description: Whether the copy ended.
  returned: always
  type: bool
percent:
  description: Migrated over total, in percent, at the last line.
  returned: always
  type: float
migrated:
  description: Items migrated at the last line.
  returned: always
  type: int
total:
  description: Items in the source, when known.
  returned: always
  type: int
items_per_second:
  description: The copy's rate as it last pushed it.
  returned: always
  type: float
eta_seconds:
  description: Seconds left as the copy last pushed it.
  returned: always
  type: float
phase:
  description: The phase recorded as running in the run state (or the job's own phase).
  returned: always
  type: str
lines:
  description: The last 20 lines printed.
  returned: always
  type: list
  elements: str
sources:
  description: What could be read (pushgateway, checkpoint, async job).
  returned: always
  type: list
  elements: str
async_failed:
  description: Whether the followed async job failed.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.monitor import monitor_argument_spec


def argument_spec() -> dict:
    return monitor_argument_spec()


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.fail_json(msg="migration_monitor runs as an action plugin on the controller; action_plugins/ is not loaded")


if __name__ == "__main__":
    main()
