"""run-migration.yml as operators use it: whole, by tag, and as a dry run."""

from __future__ import annotations

import json

from .conftest import SANDBOX, milvus_client, run_playbook, task_results

# The small seed is 1% bad records on purpose (the demo's 20,000 are 0.05%).
SMALL_SEED_VARS = ("-e", "preflight_max_mixed_dimension_ratio=0.01", "-e", "max_reject_ratio=0.05")
CHECKPOINT = SANDBOX / "state" / "migration_checkpoint.json"
REJECTS = SANDBOX / "state" / "embeddings_rejects.jsonl"


def played_roles(done) -> set[str]:
    return {
        task["task"]["name"].split(" : ")[-1].split(" | ")[0] for play in done.json["plays"] for task in play["tasks"]
    }


def test_dry_run_of_everything_predicts_and_writes_nothing(clean_target) -> None:
    done = run_playbook("run-migration.yml", "--check", *SMALL_SEED_VARS)
    assert done.returncode == 0, done.stdout[-3000:]
    assert task_results(done, "Stop unless every check passed")[0]["msg"] == "Preflight passed"
    deploy = task_results(done, "Ensure the collection")[0]
    assert deploy["changed"] and deploy["actions"] == ["create collection", "create index", "load collection"]
    copy = task_results(done, "Copy the embeddings")[0]
    assert copy["changed"] and copy["copied_this_run"] == 1006 and copy["rejected"] == 11
    assert "nothing to compare" in task_results(done, "Compare Milvus with Neo4j")[0]["message"]
    assert not milvus_client().has_collection("media_embeddings")
    assert not CHECKPOINT.exists() and not REJECTS.exists()


def test_phases_by_tag_copy_everything_and_a_rerun_changes_nothing(clean_target) -> None:
    tags = "deploy_milvus,migrate_embeddings,migrate_agentdb"
    done = run_playbook("run-migration.yml", "--tags", tags, *SMALL_SEED_VARS)
    assert done.returncode == 0, done.stdout[-3000:]
    assert played_roles(done) == {"Checks", "Deploy Milvus", "Migrate embeddings", "Migrate AgentDB"}
    agentdb = task_results(done, "Copy agents, q-values")[0]
    assert agentdb["verification"]["equal"] and agentdb["rejected"] == 12
    checkpoint = json.loads(CHECKPOINT.read_text())
    assert checkpoint["complete"] and checkpoint["migrated"] == 1006 and checkpoint["rejected"] == 11
    assert len(REJECTS.read_text().splitlines()) == 11
    # The data phases only: the storage-mode flips need engines under traffic (shadow waits for
    # comparisons, the cutover gates read them); test_engine_mode.py and molecule/zero_downtime cover them.
    for mode in ([], ["--check"]):
        again = run_playbook("run-migration.yml", "--skip-tags", "dual_write,shadow,hybrid", *mode, *SMALL_SEED_VARS)
        assert again.returncode == 0, again.stdout[-3000:]
        # The report is rewritten after every run (it says when each phase last ran); nothing else changes.
        changed = [
            task["task"]["name"]
            for play in again.json["plays"]
            for task in play["tasks"]
            if task["hosts"].get("localhost", {}).get("changed") and not task["task"]["name"].startswith("report")
        ]
        assert changed == []


def test_one_phase_by_tag_runs_the_shared_checks_too(small_seed) -> None:
    done = run_playbook("run-migration.yml", "--tags", "preflight", *SMALL_SEED_VARS)
    assert done.returncode == 0
    assert played_roles(done) == {"Checks", "Preflight"}


def test_skipping_a_phase_by_tag_skips_it(clean_target) -> None:
    done = run_playbook("run-migration.yml", "--check", "--skip-tags", "preflight,migrate_embeddings", *SMALL_SEED_VARS)
    assert done.returncode == 0
    assert played_roles(done) == {
        "Checks",
        "Deploy Milvus",
        "Engine mode",
        "Validate",
        "Shadow",
        "Hybrid",
        "Migrate AgentDB",
        "Report",
    }
