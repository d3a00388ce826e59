#!/usr/bin/python
"""Ansible module: record a phase's outcome in the run state file."""

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_run_state
short_description: Record each phase's outcome in the migration's run state file
description:
  - Keeps one JSON file per migration run (C(schema_version), C(run_id), C(created_at), C(updated_at),
    C(phases), C(mode_changes), C(events)); later phases read it to check their preconditions and the
    report (M(migration_report)) is built from it. The run id is made at the first write.
  - O(status=running) opens an attempt of O(phase) (C(started_at) now, C(attempts) plus one, C(finished_at)
    cleared); V(succeeded), V(failed) and V(skipped) close it (C(finished_at) now, C(seconds) since the
    attempt's start).
  - O(result) is the registered result of the phase's main module. Ansible's keys (C(invocation),
    C(changed), C(failed), C(diff), C(stdout*), C(stderr*), C(_ansible_*), ...) are dropped and the value of
    every key whose name contains password, token, secret or credential is replaced by C(********), at any
    depth, as is the password of any C(scheme://user:password@) address; secrets never reach the file.
  - The file is written through a temporary file, fsync and rename, under an C(fcntl) lock on
    C(<state_file>.lock), so two writers never interleave. The events history keeps the last 500 entries.
  - O(state=reset) starts a new run (new run id, no phases, no events; storage-mode changes are kept);
    it needs O(confirm_reset=true) when anything is recorded, and says what it would erase otherwise.
  - Check mode reads the file and returns the entry it would write, writing nothing. Diff mode shows the
    phase entry before and after.
version_added: "1.0.0"
author: Hybrid migration team
options:
  state_file:
    description: The run state JSON file (the inventory's C(migration_run_state_file)).
    type: path
    required: true
  phase:
    description:
      - The phase whose outcome is recorded, such as V(preflight), V(migrate_embeddings) or V(validate).
      - Required with O(status); either these or O(mode_change) must be given with O(state=present).
    type: str
  status:
    description: The phase's new status.
    type: str
    choices: [running, succeeded, failed, skipped]
  message:
    description: One sentence about the outcome, shown in the report.
    type: str
    default: ''
  result:
    description: The registered result of the phase's main module; cleaned and redacted before it is kept.
    type: dict
    default: {}
  mode_change:
    description: A storage-mode change of the engine, appended to C(mode_changes).
    type: dict
    suboptions:
      from:
        description: Mode before the change.
        type: str
        required: true
      to:
        description: Mode after the change.
        type: str
        required: true
      forced:
        description: Whether the change skipped its gates.
        type: bool
        default: false
      message:
        description: Why, or what the change waited for.
        type: str
        default: ''
  state:
    description: V(present) records, V(reset) starts a new run (destructive, needs O(confirm_reset)).
    type: str
    choices: [present, reset]
    default: present
  confirm_reset:
    description: Confirms that O(state=reset) may erase the recorded phases and events.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Migrate embeddings | Record that the copy started
  migration_run_state:
    state_file: "{{ migration_run_state_file }}"
    phase: migrate_embeddings
    status: running

- name: Migrate embeddings | Record the copy's outcome
  migration_run_state:
    state_file: "{{ migration_run_state_file }}"
    phase: migrate_embeddings
    status: "{{ 'failed' if migrate_embeddings_copy_result is failed else 'succeeded' }}"
    message: "{{ migrate_embeddings_copy_result.msg | default('') }}"
    result: "{{ migrate_embeddings_copy_result }}"

- name: Dual write | Record the storage-mode change
  migration_run_state:
    state_file: "{{ migration_run_state_file }}"
    mode_change:
      from: neo4j_only
      to: dual_write
      message: every engine instance acknowledged

- name: Start a new run record (erases the recorded phases)
  migration_run_state:
    state_file: "{{ migration_run_state_file }}"
    state: reset
    confirm_reset: true
"""

RETURN = r"""
changed:
  description: Whether the file was (in check mode, would be) written.
  returned: always
  type: bool
entry:
  description: The phase's entry as written (in check mode, as it would be written); C(check_mode) is true in a preview.
  returned: when O(phase) is given
  type: dict
  sample:
    status: succeeded
    started_at: "2025-03-01T12:00:00.000Z"
    finished_at: "2025-03-01T12:01:12.345Z"
    seconds: 72.345
    attempts: 1
    message: ""
    check_mode: false
    result: {copied_this_run: 20012, rejected: 5}
mode_change:
  description: The storage-mode change as appended.
  returned: when O(mode_change) is given
  type: dict
  sample: {from: neo4j_only, to: dual_write, at: "2025-03-01T12:00:00.000Z", forced: false, message: ""}
state_file:
  description: The run state file.
  returned: always
  type: str
run_id:
  description: The run's id (after O(state=reset), the new run's).
  returned: always
  type: str
msg:
  description: What a reset did or would do.
  returned: with O(state=reset)
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import merge_specs
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.run_state import STATUSES, clean_result, record, redact, reset


def argument_spec() -> dict:
    return merge_specs(
        {
            "state_file": {"type": "path", "required": True},
            "phase": {"type": "str"},
            "status": {"type": "str", "choices": list(STATUSES)},
            "message": {"type": "str", "default": ""},
            "result": {"type": "dict", "default": {}},
            "mode_change": {
                "type": "dict",
                "options": {
                    "from": {"type": "str", "required": True},
                    "to": {"type": "str", "required": True},
                    "forced": {"type": "bool", "default": False},
                    "message": {"type": "str", "default": ""},
                },
            },
            "state": {"type": "str", "choices": ["present", "reset"], "default": "present"},
            "confirm_reset": {"type": "bool", "default": False},
        }
    )


def as_text(entry: dict | None) -> str:
    return json.dumps(entry, indent=2, sort_keys=True) + "\n" if entry else "(not recorded)\n"


def invocation(params: dict) -> dict:
    """The arguments as Ansible echoes them, with the result redacted as in the file (secrets of a result are not no_log)."""
    shown = {**params, "result": clean_result(params["result"]), "message": redact(params["message"])}
    return {"module_args": shown}


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_together=[("phase", "status")],
        required_if=[("state", "present", ("phase", "mode_change"), True)],
    )
    params = module.params
    try:
        if params["state"] == "reset":
            outcome = reset(params["state_file"], params["confirm_reset"], module.check_mode)
        else:
            outcome = record(
                params["state_file"],
                params["phase"],
                params["status"],
                params["message"],
                params["result"],
                params["mode_change"],
                module.check_mode,
            )
    except MigrationError as error:
        module.fail_json(msg=str(error), state_file=params["state_file"], invocation=invocation(params))
    result = {
        "changed": outcome.changed,
        "state_file": params["state_file"],
        "run_id": outcome.run_id,
        "invocation": invocation(params),
    }
    if outcome.message:
        result["msg"] = outcome.message
    if params["state"] == "reset":
        if outcome.changed:
            result["diff"] = {"before": outcome.erased + "\n", "after": f"run {outcome.run_id}, nothing recorded\n"}
    elif params["phase"]:
        result["entry"] = outcome.entry
        result["diff"] = {"before": as_text(outcome.before), "after": as_text(outcome.entry)}
    if outcome.mode_change:
        result["mode_change"] = outcome.mode_change
        result.setdefault("diff", {"before": "", "after": as_text(outcome.mode_change)})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
