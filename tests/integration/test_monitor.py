"""monitor.yml follows a copy started with async and poll 0 until it ends, a line per interval."""

from __future__ import annotations

import json
import re

from .conftest import SANDBOX, run_playbook
from .test_run_migration import SMALL_SEED_VARS


def test_monitor_follows_an_async_copy_to_its_end(clean_target) -> None:
    assert run_playbook("playbooks/deploy-milvus.yml", *SMALL_SEED_VARS, callback="default").returncode == 0
    slow = ["-e", "batch_size=10", "-e", "concurrency=1", "-e", "migrate_embeddings_poll_interval=0"]
    started = run_playbook("playbooks/migrate-embeddings.yml", *slow, *SMALL_SEED_VARS)
    assert started.returncode == 0, started.stdout[-3000:]
    job = next(
        task["hosts"]["localhost"]["ansible_job_id"]
        for play in started.json["plays"]
        for task in play["tasks"]
        if "Copy the embeddings" in task["task"]["name"]
    )
    done = run_playbook(
        "playbooks/monitor.yml",
        *("-e", f"async_job_id={job}", "-e", "interval_secs=0.5", "-e", "monitor_max_seconds=120"),
        callback="default",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    lines = re.findall(r"^\[\d\d:\d\d:\d\d UTC\] migrate_embeddings: .*$", done.stdout, re.MULTILINE)
    assert len(lines) >= 2, done.stdout[-3000:]
    assert any("running" in line for line in lines[:-1]) and lines[-1].endswith("; finished"), lines
    assert re.search(r"\d+ items/s, ETA", lines[-2]), lines
    checkpoint = json.loads((SANDBOX / "state" / "migration_checkpoint.json").read_text())
    assert checkpoint["complete"] and checkpoint["migrated"] == 1006
    assert "migrate_embeddings finished: 1006 of" in done.stdout or "migrate_embeddings finished:" in done.stdout


def test_monitor_gives_up_when_no_copy_starts(clean_target) -> None:
    done = run_playbook(
        "playbooks/monitor.yml",
        "-e",
        "job=migrate_agentdb",
        "-e",
        "interval_secs=0.5",
        "-e",
        "monitor_wait_for_start_seconds=1",
        callback="default",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "no migrate_agentdb copy started within 1 s" in done.stdout
