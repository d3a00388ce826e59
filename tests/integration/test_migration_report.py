"""The run state and the report on the real sandbox, phase by phase with a copy killed and resumed:
the report in markdown, json and yaml says what happened, and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from .conftest import ROOT, SECRETS, drop_collection, kill_copy_after_batches, run_playbook, task_results
from .test_embeddings_copy import EXPECTED_REJECTS

COLLECTION = "it_report"


@pytest.fixture(scope="module")
def resumed_run(small_seed, tmp_path_factory) -> Path:
    """Preflight, deploy, a copy killed after a few batches then resumed, a full validation: phase by phase."""
    state = tmp_path_factory.mktemp("report")
    drop_collection(COLLECTION)
    extra = json.dumps(
        {
            "milvus_collection": COLLECTION,
            "migration_run_state_file": str(state / "run_state.json"),
            "migration_checkpoint_file": str(state / "checkpoint.json"),
            "migration_reject_file": str(state / "rejects.jsonl"),
            "preflight_max_mixed_dimension_ratio": 0.01,
            "max_reject_ratio": 0.05,
            "batch_size": 10,
            "concurrency": 2,
            "full_scan": True,
            "migrate_embeddings_poll_interval": 1,
        }
    )
    for playbook in ("playbooks/preflight.yml", "playbooks/deploy-milvus.yml"):
        done = run_playbook(playbook, "-e", extra)
        assert done.returncode == 0, done.stdout[-3000:]
    kill_copy_after_batches(extra, state / "checkpoint.json", 20)
    for playbook in ("playbooks/migrate-embeddings.yml", "playbooks/validate.yml"):
        done = run_playbook(playbook, "-e", extra)
        assert done.returncode == 0, done.stdout[-3000:]
    yield state
    drop_collection(COLLECTION)


def write_report(state: Path, fmt: str, *options: str) -> dict:
    path = state / f"report.{fmt}"
    done = run_playbook(
        "playbooks/report.yml",
        "-e",
        json.dumps({"migration_run_state_file": str(state / "run_state.json"), "report_file": str(path)}),
        "-e",
        f"report_format={fmt}",
        *options,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return task_results(done, "Write the migration report")[0]


def test_the_report_in_json_follows_the_schema_and_tells_the_resumed_run(resumed_run: Path) -> None:
    write_report(resumed_run, "json")
    report = json.loads((resumed_run / "report.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "docs" / "report.schema.json").read_text()))
    phases = {phase["name"]: phase for phase in report["phases"]}
    assert [p["name"] for p in report["phases"]] == ["preflight", "deploy_milvus", "migrate_embeddings", "validate"]
    assert all(phase["status"] == "succeeded" for phase in phases.values())
    assert phases["migrate_embeddings"]["attempts"] == 2  # killed once, resumed once
    embeddings = report["embeddings"]
    assert embeddings["started_from"].startswith("checkpoint (last_id=")
    assert embeddings["migrated"] == 1006 and embeddings["rejected"] == 11
    assert embeddings["rejected_by_kind"] == EXPECTED_REJECTS
    assert embeddings["catch_up"]["available"] is True
    validation = report["validation"]
    assert validation["mode"] == "full_scan" and validation["success_rate"] == 1.0 and validation["passed"]
    assert validation["categories"]["missing_in_milvus"]["count"] == 0
    assert validation["source_rejected_by_kind"] == EXPECTED_REJECTS
    assert report["hnsw"]["M"] == 16 and report["hnsw"]["efConstruction"] == 256 and report["hnsw"]["dimension"] == 768
    assert report["hnsw"]["collection"] == COLLECTION
    for server in ("neo4j", "milvus", "postgres", "redis"):
        assert report["servers"][server]["source"] == "live" and report["servers"][server]["version"]
    assert report["storage_mode"]["current"] == "neo4j_only"


def test_yaml_holds_the_same_data_and_markdown_reads_like_pgloader(resumed_run: Path) -> None:
    write_report(resumed_run, "json")
    write_report(resumed_run, "yaml")
    write_report(resumed_run, "markdown")
    as_json = json.loads((resumed_run / "report.json").read_text())
    assert yaml.safe_load((resumed_run / "report.yaml").read_text()) == as_json
    text = (resumed_run / "report.markdown").read_text()
    assert "phase" in text and "status" in text and "copied" in text and "Totals" in text
    assert "migrate_embeddings  succeeded" in text
    assert "100.000%" in text
    for kind, rows in EXPECTED_REJECTS.items():
        assert f"| `{kind}` | {rows} |" in text
    for name in ("preflight", "deploy_milvus", "validate"):
        assert name in text


def test_no_format_ever_carries_a_secret(resumed_run: Path) -> None:
    texts = [(resumed_run / "run_state.json").read_text()]
    for fmt in ("markdown", "json", "yaml"):
        write_report(resumed_run, fmt)
        texts.append((resumed_run / f"report.{fmt}").read_text())
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_a_second_report_changes_nothing_and_check_mode_writes_nothing(resumed_run: Path) -> None:
    write_report(resumed_run, "json")
    again = write_report(resumed_run, "json")
    assert again["changed"] is False
    preview = run_playbook(
        "playbooks/report.yml",
        "-e",
        json.dumps(
            {
                "migration_run_state_file": str(resumed_run / "run_state.json"),
                "report_file": str(resumed_run / "preview.md"),
            }
        ),
        "--check",
    )
    assert preview.returncode == 0 and not (resumed_run / "preview.md").exists()
    assert task_results(preview, "Write the migration report")[0]["changed"] is True
