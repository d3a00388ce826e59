"""migration_run_state and migration_report through ansible-playbook, on files only (no server is written).

The community.postgresql sequence: check mode -> nothing written -> apply -> state
as expected -> again in both modes -> unchanged.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

SECRET = "s3cret-in-a-result-41"
LEAK = "leaked-password-97"

PLAYBOOK = r"""
- name: Run state and report modules
  hosts: localhost
  gather_facts: false
  vars:
    state_file: "{{ work }}/state/run_state.json"
    report_path: "{{ work }}/out/report.md"
  tasks:
    - name: Preview the start of a phase
      migration_run_state: {state_file: "{{ state_file }}", phase: migrate_embeddings, status: running}
      check_mode: true
      diff: true
      register: preview

    - name: Look for the file after the preview
      ansible.builtin.stat: {path: "{{ state_file }}"}
      register: after_preview

    - name: Start the phase
      migration_run_state: {state_file: "{{ state_file }}", phase: migrate_embeddings, status: running}
      register: started

    - name: Finish it with a result that carries a secret
      migration_run_state:
        state_file: "{{ state_file }}"
        phase: migrate_embeddings
        status: succeeded
        result:
          changed: true
          copied_this_run: 3
          read: 4
          rejected: 1
          rejected_by_kind: {wrong_dimension: 1}
          settings: {password: "{{ secret }}"}
      register: finished

    - name: Record a mode change
      migration_run_state:
        state_file: "{{ state_file }}"
        mode_change: {from: neo4j_only, to: dual_write}
      register: mode

    - name: Refuse a reset without confirmation
      migration_run_state: {state_file: "{{ state_file }}", state: reset}
      register: refused
      ignore_errors: true

    - name: Preview the report
      migration_report: {report_file: "{{ report_path }}", run_state_file: "{{ state_file }}"}
      check_mode: true
      diff: true
      register: report_preview

    - name: Look for the report after the preview
      ansible.builtin.stat: {path: "{{ report_path }}"}
      register: report_after_preview

    - name: Write the report
      migration_report: {report_file: "{{ report_path }}", run_state_file: "{{ state_file }}"}
      register: written

    - name: Write it again
      migration_report: {report_file: "{{ report_path }}", run_state_file: "{{ state_file }}"}
      register: again

    - name: Preview it again
      migration_report: {report_file: "{{ report_path }}", run_state_file: "{{ state_file }}"}
      check_mode: true
      register: again_preview

    - name: Write it as JSON
      migration_report:
        report_file: "{{ work }}/out/report.json"
        report_format: json
        run_state_file: "{{ state_file }}"
      register: as_json

    - name: Record a message that holds a password
      migration_run_state:
        state_file: "{{ state_file }}"
        phase: validate
        status: failed
        message: "tried {{ leak }}"

    - name: Refuse to write a report that would hold a received password
      migration_report:
        report_file: "{{ report_path }}"
        run_state_file: "{{ state_file }}"
        postgres: {host: 127.0.0.1, port: 1, password: "{{ leak }}", connect_timeout: 2}
      register: leaked
      ignore_errors: true

    - name: Keep every result for the test
      ansible.builtin.copy:
        content: "{{ {'preview': preview, 'after_preview': after_preview, 'started': started, 'finished': finished,
                      'mode': mode, 'refused': refused, 'report_preview': report_preview,
                      'report_after_preview': report_after_preview, 'written': written, 'again': again,
                      'again_preview': again_preview, 'as_json': as_json, 'leaked': leaked} | to_json }}"
        dest: "{{ work }}/results.json"
        mode: "0600"
      check_mode: false
"""


def run_playbook(playbook: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    command = [f"{os.path.dirname(sys.executable)}/ansible-playbook", str(playbook), *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    work = tmp_path_factory.mktemp("modules")
    playbook = work / "play.yml"
    playbook.write_text(PLAYBOOK)
    done = run_playbook(
        playbook,
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        json.dumps({"work": str(work), "secret": SECRET, "leak": LEAK}),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return work, json.loads((work / "results.json").read_text()), done.stdout


def test_run_state_check_mode_writes_nothing(results: tuple[Path, dict[str, Any], str]) -> None:
    _, found, _ = results
    assert found["preview"]["changed"] is True
    assert found["preview"]["entry"]["status"] == "running" and found["preview"]["entry"]["check_mode"] is True
    assert found["after_preview"]["stat"]["exists"] is False


def test_run_state_records_attempts_and_redacts(results: tuple[Path, dict[str, Any], str]) -> None:
    work, found, output = results
    assert found["started"]["changed"] is True and found["started"]["entry"]["attempts"] == 1
    entry = found["finished"]["entry"]
    assert entry["status"] == "succeeded" and entry["attempts"] == 1 and entry["seconds"] is not None
    assert entry["result"] == {
        "copied_this_run": 3,
        "read": 4,
        "rejected": 1,
        "rejected_by_kind": {"wrong_dimension": 1},
        "settings": {"password": "********"},
    }
    assert found["started"]["run_id"] == found["finished"]["run_id"] == found["mode"]["run_id"]
    assert found["mode"]["mode_change"]["to"] == "dual_write"
    text = (work / "state" / "run_state.json").read_text()
    assert SECRET not in text and SECRET not in output
    assert SECRET not in json.dumps(found["finished"])


def test_run_state_reset_needs_confirmation(results: tuple[Path, dict[str, Any], str]) -> None:
    _, found, _ = results
    assert found["refused"]["failed"] is True
    assert "would erase" in found["refused"]["msg"] and "migrate_embeddings (succeeded)" in found["refused"]["msg"]


def test_report_check_mode_then_write_then_unchanged(results: tuple[Path, dict[str, Any], str]) -> None:
    _, found, _ = results
    assert found["report_preview"]["changed"] is True
    assert found["report_preview"]["diff"]["before"] == ""
    assert found["report_preview"]["diff"]["after"].startswith("# Migration report")
    assert found["report_after_preview"]["stat"]["exists"] is False
    assert found["written"]["changed"] is True
    assert found["again"]["changed"] is False and found["again_preview"]["changed"] is False
    assert found["written"]["report"] == found["again"]["report"]
    assert found["written"]["report"]["counts"] == {"read": 4, "copied": 3, "rejected": 1, "fixed": 0}
    assert found["written"]["report"]["storage_mode"]["current"] == "dual_write"
    assert found["written"]["summary"][0].startswith(f"run {found['started']['run_id']}: succeeded")


def test_report_json_file_matches_the_returned_report(results: tuple[Path, dict[str, Any], str]) -> None:
    work, found, _ = results
    path = work / "out" / "report.json"
    assert json.loads(path.read_text()) == found["as_json"]["report"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_report_refuses_to_write_a_received_password(results: tuple[Path, dict[str, Any], str]) -> None:
    work, found, output = results
    assert found["leaked"]["failed"] is True
    assert "postgres.password" in found["leaked"]["msg"] and "refusing to write" in found["leaked"]["msg"]
    assert LEAK not in (work / "out" / "report.md").read_text()
    assert LEAK not in output.split("Refuse to write a report")[1]


def test_report_playbook_with_the_project_inventory(tmp_path: Path) -> None:
    """playbooks/report.yml with -e report_file / report_format, versions from the run state only."""
    state = tmp_path / "run_state.json"
    state.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "run_id": "abc",
                "created_at": "2025-03-01T12:00:00.000Z",
                "updated_at": "2025-03-01T12:00:05.000Z",
                "phases": {
                    "preflight": {
                        "status": "succeeded",
                        "started_at": "2025-03-01T12:00:00.000Z",
                        "finished_at": "2025-03-01T12:00:05.000Z",
                        "seconds": 5.0,
                        "attempts": 1,
                        "message": "",
                        "result": {"facts": {"neo4j_version": "5.26.19", "redis_version": "7.0.15"}},
                    }
                },
                "mode_changes": [],
                "events": [],
            }
        )
    )
    report = tmp_path / "reports" / "r.yaml"
    extra = [
        "-e",
        f"migration_run_state_file={state}",
        "-e",
        f"report_file={report}",
        "-e",
        "report_format=yaml",
        "-e",
        "report_live_versions=false",
    ]
    first = run_playbook(ROOT / "playbooks" / "report.yml", *extra)
    assert first.returncode == 0, first.stdout[-3000:]
    data = yaml.safe_load(report.read_text())
    assert data["run"]["run_id"] == "abc"
    assert data["servers"]["neo4j"] == {"version": "5.26.19", "source": "preflight"}
    assert data["servers"]["milvus"] == {"version": None, "source": "unknown"}
    assert f"Report {report} (yaml): written" in first.stdout
    second = run_playbook(ROOT / "playbooks" / "report.yml", *extra)
    assert second.returncode == 0
    assert "changed=0" in second.stdout.split("PLAY RECAP")[1]
    assert f"Report {report} (yaml): unchanged" in second.stdout
    assert "changed=1" in first.stdout.split("PLAY RECAP")[1]
