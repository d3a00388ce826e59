"""Milvus killed (SIGKILL) while the fleet dual-writes under load, then restarted.

Requests must keep succeeding from Neo4j, the Milvus writes that failed must be queued and
repaired once Milvus is back, and a full-scan validation must end at 100% without another copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ROOT, SANDBOX, milvus_client, run_playbook, seed_small
from .test_engine_mode import engine_modes, to_neo4j_only
from .test_run_migration import SMALL_SEED_VARS

ENDPOINTS = ("http://127.0.0.1:8081", "http://127.0.0.1:8082")
MILVUS_ONLY = '{"sandbox_services": ["milvus"]}'
LOAD_ENVIRONMENT = {
    "ENGINE_NEO4J": json.dumps(
        {"uri": "bolt://127.0.0.1:7687", "user": "neo4j", "password": "sandbox-neo4j-secret", "database": "neo4j"}
    ),
    "ENGINE_MILVUS": json.dumps({"uri": "http://127.0.0.1:19530"}),
}


def fleet_metric(name: str) -> float:
    total = 0.0
    for endpoint in ENDPOINTS:
        with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as answer:  # noqa: S310 - the sandbox's http URLs
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            total += sum(sample.value for sample in family.samples if sample.name == name)
    return total


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {seconds:.0f} s waiting for {what}"
        time.sleep(1)


def index_built() -> bool:
    client = milvus_client()
    try:
        state = client.describe_index("media_embeddings", client.list_indexes("media_embeddings")[0])
    finally:
        client.close()
    return state.get("state") == "Finished" and int(state.get("pending_index_rows", 0)) == 0


def collection_loaded() -> bool:
    client = milvus_client()
    try:
        return client.get_load_state("media_embeddings")["state"].name == "Loaded"
    finally:
        client.close()


def playbook(*args: str) -> None:
    done = run_playbook(*args, *SMALL_SEED_VARS, callback="default")
    assert done.returncode == 0, done.stdout[-3000:]


def test_milvus_killed_during_dual_write_is_repaired_and_validation_ends_at_100_percent(
    seed_restored_afterwards, tmp_path: Path
) -> None:
    to_neo4j_only()
    playbook("playbooks/deploy-milvus.yml")
    playbook("playbooks/dual-write.yml")
    playbook("playbooks/migrate-embeddings.yml")
    # Killed while it still builds the index of the copy, Milvus 2.3.5 can take minutes to recover;
    # that recovery is Milvus's, not what this test is about.
    wait_for(index_built, 180, "Milvus to build the index of the copy")
    errors_before = fleet_metric("dual_write_milvus_errors_total")
    repaired_before = fleet_metric("dual_write_repaired_total")
    summary = tmp_path / "summary.json"
    load = subprocess.Popen(
        [
            *(sys.executable, "-m", "reference_engine.load", "run", *(f"--endpoint={e}" for e in ENDPOINTS)),
            *("--writes-per-second=20", "--searches-per-second=10", "--pool-size=500"),
            *(f"--stop-file={tmp_path / 'stop'}", f"--journal={tmp_path / 'journal.jsonl'}", f"--summary={summary}"),
        ],
        cwd=ROOT,
        env={**os.environ, **LOAD_ENVIRONMENT},
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(5)
        os.killpg(json.loads((SANDBOX / "milvus.pid").read_text())["pid"], signal.SIGKILL)
        wait_for(lambda: fleet_metric("dual_write_repair_queue_size") > 20, 60, "failed Milvus writes to be queued")
        # The sandbox waits until the killed server's ports leave TIME_WAIT before it starts Milvus again.
        playbook("playbooks/sandbox.yml", "-e", "sandbox_install=false", "-e", MILVUS_ONLY)
        wait_for(lambda: fleet_metric("dual_write_repair_queue_size") == 0, 240, "the repair queue to drain")
        time.sleep(3)
    finally:
        (tmp_path / "stop").touch()
        load.wait(timeout=120)
    result = json.loads(summary.read_text())
    assert result["failed"] == 0, result["errors"]
    assert result["writes"]["ok"] > 200 and result["searches"]["ok"] > 100
    assert fleet_metric("dual_write_milvus_errors_total") > errors_before
    assert fleet_metric("dual_write_repaired_total") > repaired_before
    assert engine_modes() == ["dual_write", "dual_write"]

    # Upserts are taken as soon as Milvus answers; queries wait until it has loaded the collection again.
    wait_for(collection_loaded, 240, "Milvus to load the collection again after its restart")
    checked = subprocess.run(
        [
            *(sys.executable, "-m", "reference_engine.load", "verify", "--milvus"),
            *(f"--journal={tmp_path / 'journal.jsonl'}", f"--summary={summary}"),
        ],
        cwd=ROOT,
        env={**os.environ, **LOAD_ENVIRONMENT},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]

    playbook("playbooks/validate.yml", "-e", "full_scan=true")
    state = json.loads((SANDBOX / "state" / "run_state.json").read_text())
    assert state["phases"]["validate"]["result"]["success_rate"] == 1.0


@pytest.fixture()
def seed_restored_afterwards(clean_target):
    """The load writes into the small seed; the tests after this one expect it as seeded."""
    yield
    to_neo4j_only()
    seed_small(reset=True)
