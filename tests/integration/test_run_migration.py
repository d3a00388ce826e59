"""run-migration.yml as operators use it: whole, by tag, and as a dry run."""

from __future__ import annotations

from .conftest import run_playbook, stats, task_results

ODD_DIMENSIONS_OK = ("-e", "preflight_max_mixed_dimension_ratio=0.01")


def played_roles(done) -> set[str]:
    return {
        task["task"]["name"].split(" : ")[-1].split(" | ")[0] for play in done.json["plays"] for task in play["tasks"]
    }


def test_dry_run_of_everything_changes_nothing(small_seed) -> None:
    done = run_playbook("run-migration.yml", "--check", *ODD_DIMENSIONS_OK)
    assert done.returncode == 0, done.stdout[-2000:]
    assert stats(done)["changed"] == 0
    assert task_results(done, "Stop unless every check passed")[0]["msg"] == "Preflight passed"


def test_one_phase_by_tag_runs_the_shared_checks_too(small_seed) -> None:
    done = run_playbook("run-migration.yml", "--tags", "preflight", *ODD_DIMENSIONS_OK)
    assert done.returncode == 0
    assert played_roles(done) == {"Checks", "Preflight"}


def test_skipping_a_phase_by_tag_skips_it(small_seed) -> None:
    done = run_playbook("run-migration.yml", "--skip-tags", "preflight")
    assert done.returncode == 0
    assert played_roles(done) == {"Checks"}
