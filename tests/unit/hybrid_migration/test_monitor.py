"""The monitor's reading of the Pushgateway, the checkpoint and the run state, and its line."""

from __future__ import annotations

import json
from pathlib import Path

from ansible.module_utils.hybrid_migration.monitor import Progress, duration, parse_pushgateway, render, snapshot

PUSHGATEWAY_PAGE = """# HELP migration_migrated_items Items copied
# TYPE migration_migrated_items gauge
migration_migrated_items{instance="",job="migrate_embeddings"} 500
migration_migrated_items{instance="",job="migrate_agentdb"} 7
migration_total_items{instance="",job="migrate_embeddings"} 2000
migration_items_per_second{instance="",job="migrate_embeddings"} 250.5
migration_running{instance="",job="migrate_embeddings"} 1
push_time_seconds{instance="",job="migrate_embeddings"} 1.7e+09
"""


def test_the_pushgateway_page_is_read_for_one_job() -> None:
    values = parse_pushgateway(PUSHGATEWAY_PAGE, "migrate_embeddings")
    assert values == {
        "migration_migrated_items": 500.0,
        "migration_total_items": 2000.0,
        "migration_items_per_second": 250.5,
        "migration_running": 1.0,
    }


def test_a_checkpoint_alone_gives_progress_and_its_completion_ends_the_watch(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(json.dumps({"migrated": 10, "total": 40, "complete": False}))
    state = tmp_path / "run_state.json"
    state.write_text(json.dumps({"phases": {"migrate_embeddings": {"status": "running"}}}))
    progress = snapshot("migrate_embeddings", checkpoint, "", state)
    assert (progress.percent, progress.phase, progress.finished) == (25.0, "migrate_embeddings", False)
    checkpoint.write_text(json.dumps({"migrated": 40, "total": 40, "complete": True}))
    assert snapshot("migrate_embeddings", checkpoint, "", state).finished


def test_an_async_job_decides_when_the_watch_ends(tmp_path: Path) -> None:
    job = tmp_path / "j1"
    progress = snapshot("migrate_agentdb", None, "", None, job)
    assert progress.async_finished is False and not progress.finished  # not written yet
    job.write_text(json.dumps({"started": 1, "finished": 0, "ansible_job_id": "j1"}))
    assert not snapshot("migrate_agentdb", None, "", None, job).finished
    job.write_text(json.dumps({"failed": True, "msg": "Redis down"}))  # the module's result replaces it
    progress = snapshot("migrate_agentdb", None, "", None, job)
    assert progress.finished and progress.async_failed


def test_missing_sources_make_a_line_with_less_in_it() -> None:
    line = render(Progress(job="migrate_embeddings"), now=0)
    assert line == "[00:00:00 UTC] migrate_embeddings: -% (- / -), - items/s, ETA -; no phase recorded; waiting"
    assert (duration(59), duration(61), duration(3723)) == ("59s", "1m01s", "1h02m03s")
