from __future__ import annotations

import json
import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible.module_utils.hybrid_migration import run_state
from ansible.module_utils.hybrid_migration.errors import TerminalError, TransientError
from ansible.module_utils.hybrid_migration.run_state import (
    MAX_EVENTS,
    REDACTED,
    clean_result,
    empty_state,
    load_run_state,
    lock_path,
    locked,
    record,
    record_mode_change,
    record_phase,
    reset,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_running_then_succeeded_sets_times_attempts_and_seconds() -> None:
    state, entry = record_phase(empty_state(), "migrate_embeddings", "running", now=T0)
    assert entry["status"] == "running"
    assert entry["started_at"] == "2025-03-01T12:00:00.000Z"
    assert entry["finished_at"] is None and entry["seconds"] is None
    assert entry["attempts"] == 1
    assert state["run_id"] and len(state["run_id"]) == 32
    assert state["created_at"] == state["updated_at"] == "2025-03-01T12:00:00.000Z"

    later = T0 + timedelta(seconds=72.345)
    state, entry = record_phase(state, "migrate_embeddings", "succeeded", "done", {"copied_this_run": 5}, now=later)
    assert entry["finished_at"] == "2025-03-01T12:01:12.345Z"
    assert entry["seconds"] == 72.345
    assert entry["attempts"] == 1
    assert entry["result"] == {"copied_this_run": 5}
    assert state["updated_at"] == entry["finished_at"]
    assert state["created_at"] == "2025-03-01T12:00:00.000Z"
    assert [(event["phase"], event["status"]) for event in state["events"]] == [
        ("migrate_embeddings", "running"),
        ("migrate_embeddings", "succeeded"),
    ]


def test_a_new_attempt_counts_up_and_clears_the_finish() -> None:
    state, _ = record_phase(empty_state(), "validate", "running", now=T0)
    state, _ = record_phase(state, "validate", "failed", "gate", now=T0 + timedelta(seconds=3))
    run_id = state["run_id"]
    state, entry = record_phase(state, "validate", "running", now=T0 + timedelta(seconds=10))
    assert entry["attempts"] == 2
    assert entry["started_at"] == "2025-03-01T12:00:10.000Z"
    assert entry["finished_at"] is None and entry["seconds"] is None
    assert entry["result"] == {}
    state, entry = record_phase(state, "validate", "succeeded", now=T0 + timedelta(seconds=12.5))
    assert entry["seconds"] == 2.5
    assert state["run_id"] == run_id


def test_an_outcome_without_a_start_counts_an_attempt_of_unknown_length() -> None:
    state, _ = record_phase(empty_state(), "preflight", "running", now=T0)
    state, _ = record_phase(state, "preflight", "succeeded", now=T0 + timedelta(seconds=4))
    state, entry = record_phase(state, "preflight", "succeeded", now=T0 + timedelta(hours=1))
    assert entry["attempts"] == 2
    assert entry["started_at"] is None and entry["seconds"] is None
    state, entry = record_phase(state, "shadow", "skipped", "skip-tags", now=T0)
    assert entry["attempts"] == 0
    assert entry["finished_at"] == "2025-03-01T12:00:00.000Z" and entry["message"] == "skip-tags"


def test_bad_phase_or_status_is_refused() -> None:
    with pytest.raises(TerminalError, match="not one of running"):
        record_phase(empty_state(), "validate", "done")
    with pytest.raises(TerminalError, match="non-empty"):
        record_phase(empty_state(), " ", "running")


def test_ansible_keys_are_dropped_and_nested_secrets_redacted() -> None:
    registered = {
        "changed": True,
        "failed": False,
        "invocation": {"module_args": {"neo4j": {"password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}},
        "diff": {"before": "", "after": ""},
        "stdout": "x",
        "stdout_lines": ["x"],
        "stderr": "",
        "_ansible_no_log": False,
        "ansible_job_id": "j1",
        "finished": 1,
        "copied_this_run": 10,
        "neo4j": {"uri": "bolt://127.0.0.1:7687", "password": "pw-one"},
        "connections": [{"milvus": {"token": "tok-two", "Api_Token": "tok-three"}}],
        "client_secret": {"deep": "secret-four"},
        "aws_credentials": ["cred-five"],
        "uri": "postgresql://migration:pw-six@db:5432/agentdb",
        "ratio": float("nan"),
        "kinds": {"b", "a"},
    }
    cleaned = clean_result(registered)
    assert set(cleaned) == {
        "copied_this_run",
        "neo4j",
        "connections",
        "client_secret",
        "aws_credentials",
        "uri",
        "ratio",
        "kinds",
    }
    assert cleaned["neo4j"] == {"uri": "bolt://127.0.0.1:7687", "password": REDACTED}
    assert cleaned["connections"] == [{"milvus": {"token": REDACTED, "Api_Token": REDACTED}}]
    assert cleaned["client_secret"] == REDACTED
    assert cleaned["aws_credentials"] == REDACTED
    assert cleaned["uri"] == f"postgresql://migration:{REDACTED}@db:5432/agentdb"
    assert cleaned["ratio"] is None
    assert cleaned["kinds"] == ["a", "b"]
    text = json.dumps(cleaned)
    for secret in ("pw-one", "tok-two", "tok-three", "secret-four", "cred-five", "pw-six"):
        assert secret not in text


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    result = {"settings": {"redis": {"password": "hunter2-redis"}}, "read": 3}
    record(path, "migrate_agentdb", "failed", "at redis://:hunter2-uri@127.0.0.1:6379", result)
    text = path.read_text()
    assert "hunter2-redis" not in text and "hunter2-uri" not in text
    assert json.loads(text)["phases"]["migrate_agentdb"]["result"]["read"] == 3


def test_the_file_is_written_whole_with_its_mode_and_no_temporary_left(tmp_path: Path) -> None:
    path = tmp_path / "state" / "run_state.json"
    outcome = record(path, "preflight", "running")
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["run_id"] == outcome.run_id
    assert set(data) == {"schema_version", "run_id", "created_at", "updated_at", "phases", "mode_changes", "events"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == ["run_state.json", "run_state.json.lock"]


def test_a_crash_while_writing_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run_state.json"
    record(path, "preflight", "succeeded")
    before = path.read_text()

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(run_state.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        record(path, "deploy_milvus", "running")
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_writer_waits_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    done = threading.Event()

    def write() -> None:
        record(path, "validate", "running")
        done.set()

    with locked(path):
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.3)
        assert not done.is_set()
        assert not path.exists()
    writer.join(5)
    assert done.is_set()
    assert load_run_state(path)["phases"]["validate"]["attempts"] == 1


def test_a_lock_held_too_long_is_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    with locked(path), pytest.raises(TransientError, match=r"run_state\.json\.lock"), locked(path, timeout=0.2):
        pass


def test_parallel_writers_lose_no_record(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"

    def write(phase: str) -> None:
        for _ in range(10):
            record(path, phase, "running")

    threads = [threading.Thread(target=write, args=(f"phase_{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    state = load_run_state(path)
    assert {name: entry["attempts"] for name, entry in state["phases"].items()} == {f"phase_{n}": 10 for n in range(6)}
    assert len(state["events"]) == 60


def test_events_keep_the_last_500() -> None:
    state = empty_state()
    for number in range(MAX_EVENTS + 20):
        state, _ = record_phase(state, "monitor", "running", str(number), now=T0)
    assert len(state["events"]) == MAX_EVENTS
    assert state["events"][0]["message"] == "20"
    assert state["events"][-1]["message"] == str(MAX_EVENTS + 19)


def test_a_mode_change_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    clock = Clock()
    outcome = record(path, mode_change={"from": "neo4j_only", "to": "dual_write", "message": "acked"}, clock=clock)
    clock.advance(5)
    record(path, mode_change={"from": "dual_write", "to": "neo4j_only", "forced": True}, clock=clock)
    state = load_run_state(path)
    assert outcome.mode_change == state["mode_changes"][0]
    assert state["mode_changes"] == [
        {
            "from": "neo4j_only",
            "to": "dual_write",
            "at": "2025-03-01T12:00:00.000Z",
            "forced": False,
            "message": "acked",
        },
        {"from": "dual_write", "to": "neo4j_only", "at": "2025-03-01T12:00:05.000Z", "forced": True, "message": ""},
    ]
    assert state["phases"] == {}
    with pytest.raises(TerminalError, match="'from' and 'to'"):
        record_mode_change(state, {"to": "hybrid"})


def test_record_needs_something_to_record(tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="give a phase"):
        record(tmp_path / "s.json")
    with pytest.raises(TerminalError, match="go together"):
        record(tmp_path / "s.json", phase="validate")
    assert list(tmp_path.iterdir()) == []


def test_check_mode_writes_nothing_and_returns_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    outcome = record(path, "preflight", "running", check_mode=True, clock=Clock())
    assert outcome.changed
    assert outcome.entry["status"] == "running" and outcome.entry["check_mode"] is True
    assert list(tmp_path.iterdir()) == []
    record(path, "preflight", "running")
    before = path.read_text()
    outcome = record(path, "preflight", "succeeded", check_mode=True)
    assert outcome.before["status"] == "running" and outcome.entry["status"] == "succeeded"
    assert path.read_text() == before


def test_missing_file_is_an_empty_state_and_a_broken_one_says_what_to_do(tmp_path: Path) -> None:
    assert load_run_state(tmp_path / "none.json") == empty_state()
    broken = tmp_path / "broken.json"
    for content, reason in (("{not json", "not JSON"), ("[1]", "expected a JSON object"), ('{"phases": []}', "phases")):
        broken.write_text(content)
        with pytest.raises(TerminalError, match=reason) as caught:
            load_run_state(broken)
        assert "move it away" in str(caught.value) and str(broken) in str(caught.value)
    broken.write_text('{"schema_version": 2}')
    with pytest.raises(TerminalError, match="schema_version 2"):
        load_run_state(broken)


def test_reset_needs_confirmation_and_says_what_it_would_erase(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    record(path, "preflight", "succeeded")
    first = record(path, "validate", "failed", mode_change={"from": "neo4j_only", "to": "dual_write"})
    before = path.read_text()
    with pytest.raises(TerminalError) as caught:
        reset(path, confirm=False)
    message = str(caught.value)
    assert "confirm_reset=true" in message and first.run_id in message
    assert "preflight (succeeded)" in message and "validate (failed)" in message
    assert path.read_text() == before

    preview = reset(path, confirm=True, check_mode=True)
    assert preview.changed and path.read_text() == before

    outcome = reset(path, confirm=True)
    state = load_run_state(path)
    assert outcome.changed and state["run_id"] == outcome.run_id != first.run_id
    assert state["phases"] == {}
    assert [change["to"] for change in state["mode_changes"]] == ["dual_write"]
    assert [event["status"] for event in state["events"]] == ["reset"]
    assert first.run_id in state["events"][0]["message"]


def test_reset_of_nothing_recorded_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    outcome = reset(path, confirm=False)
    assert not outcome.changed
    assert not path.exists()


def test_reset_replaces_an_unreadable_file_only_when_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "run_state.json"
    path.write_text("{garbage")
    with pytest.raises(TerminalError, match="confirm_reset=true"):
        reset(path, confirm=False)
    assert path.read_text() == "{garbage"
    outcome = reset(path, confirm=True)
    assert load_run_state(path)["run_id"] == outcome.run_id


def test_the_lock_file_sits_beside_the_state(tmp_path: Path) -> None:
    assert lock_path(tmp_path / "run_state.json") == tmp_path / "run_state.json.lock"
    with locked(tmp_path / "sub" / "run_state.json"):
        assert (tmp_path / "sub" / "run_state.json.lock").exists()
    assert os.access(tmp_path / "sub" / "run_state.json.lock", os.R_OK)
