"""embeddings_copy on the real Neo4j and Milvus: exact result, resume, kill -9, metrics, async."""

from __future__ import annotations

import json
import random
import subprocess
import time
import urllib.request
from pathlib import Path

import neo4j
import numpy as np
import pytest
from ansible.module_utils.hybrid_migration.milvus_reader import all_ids, fetch_vectors

from .conftest import (
    BIN,
    CONNECTIONS,
    ROOT,
    SMALL_SEED,
    ansible_env,
    drop_collection,
    ensure_test_collection,
    kill_copy_after_batches,
    milvus_client,
    run_module,
    run_playbook,
)

COLLECTION = "it_copy"
TRICKY = 5
EXPECTED_REJECTS = {
    "duplicate_id": 1,
    "empty_id": 1,
    "id_too_long": 1,
    "missing_embedding": 1,
    "missing_id": 1,
    "not_finite": 2,
    "not_numeric": 2,
    "wrong_dimension": 2,
}


def expected_ids(small_seed) -> set[str]:
    media = {f"media-{n:07d}" for n in range(SMALL_SEED["media_count"])}
    return media | set(small_seed["tricky_ids"]) | {"424242"}


def neo4j_vectors(ids: list[str]) -> dict[str, np.ndarray]:
    with neo4j.GraphDatabase.driver("bolt://127.0.0.1:7687", auth=("neo4j", "sandbox-neo4j-secret")) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (m:Media) WHERE m.id IN $ids RETURN m.id AS id, m.embedding AS e", {"ids": ids}
        )
    return {r["id"]: np.asarray(r["e"], dtype=np.float32) for r in records}


def assert_milvus_equals_the_valid_source(small_seed, collection: str = COLLECTION) -> None:
    client = milvus_client()
    stored = list(all_ids(client, collection))
    expected = expected_ids(small_seed)
    assert len(stored) == len(set(stored)), "duplicates in Milvus"
    assert set(stored) == expected, (
        f"missing {sorted(expected - set(stored))[:5]}, extra {sorted(set(stored) - expected)[:5]}"
    )
    ids = sorted(expected)
    source = neo4j_vectors(ids)
    target = fetch_vectors(client, collection, ids)
    distances = [float(np.linalg.norm(source[i] - target[i])) for i in ids]
    assert max(distances) < 1e-5


def playbook_vars(tmp_path: Path, **overrides) -> str:
    """Extra variables that point migrate-embeddings.yml at the test collection and state files."""
    values = {
        "migrate_embeddings_collection": COLLECTION,
        "migrate_embeddings_checkpoint_file": str(tmp_path / "checkpoint.json"),
        "migrate_embeddings_reject_file": str(tmp_path / "rejects.jsonl"),
        "migrate_embeddings_max_reject_ratio": 0.05,
        "migrate_embeddings_poll_interval": 1,
        "migration_run_state_file": str(tmp_path / "run_state.json"),
        **overrides,
    }
    return json.dumps(values)


@pytest.fixture()
def copy_args(small_seed, tmp_path: Path):
    ensure_test_collection(COLLECTION)

    def build(**overrides) -> dict:
        return {
            "neo4j": CONNECTIONS["neo4j"],
            "milvus": CONNECTIONS["milvus"],
            "source": "{{ neo4j_source }}",
            "collection": COLLECTION,
            "checkpoint_file": str(tmp_path / "checkpoint.json"),
            "reject_file": str(tmp_path / "rejects.jsonl"),
            "max_reject_ratio": 0.05,  # the small seed is 1% bad records on purpose
            **overrides,
        }

    yield build
    drop_collection(COLLECTION)


def test_check_mode_counts_and_writes_nothing(copy_args, tmp_path: Path) -> None:
    result = run_module("embeddings_copy", copy_args(), check=True)
    assert result["changed"] and not result["complete"]
    assert result["copied_this_run"] == 1000 + TRICKY + 1
    assert result["rejected_by_kind"] == EXPECTED_REJECTS
    assert not (tmp_path / "checkpoint.json").exists() and not (tmp_path / "rejects.jsonl").exists()
    assert list(all_ids(milvus_client(), COLLECTION)) == []


def test_copy_is_exact_rejects_every_bad_row_and_reruns_change_nothing(copy_args, small_seed, tmp_path: Path) -> None:
    result = run_module("embeddings_copy", copy_args(batch_size=100, concurrency=4))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and result["complete"]
    assert result["migrated"] == result["copied_this_run"] == 1006
    assert result["rejected_by_kind"] == EXPECTED_REJECTS
    assert_milvus_equals_the_valid_source(small_seed)

    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 11 and all(r["reason"] for r in rejects)
    by_id = {r["id"]: r for r in rejects}
    assert by_id["bad-nan"]["reason"].startswith("NaN or Inf")
    assert by_id["bad-wrong-dimension"]["reason"] == "dimension 767, expected 768"
    assert by_id["424242"]["kind"] == "duplicate_id"
    expected_kinds = {r["kind"] for r in small_seed["bad_records"] if r["store"] == "neo4j"}
    assert {r["kind"] for r in rejects} == expected_kinds

    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert checkpoint["complete"] and checkpoint["migrated"] == 1006 and checkpoint["rejected"] == 11
    assert checkpoint["last_id"] == max(i for i in expected_ids(small_seed) | {"x" * 513})

    for check in (True, False):
        again = run_module("embeddings_copy", copy_args(batch_size=100), check=check)
        assert not again["changed"] and again["copied_this_run"] == 0
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 11


def test_too_many_rejects_fail_after_the_valid_rows_moved(copy_args, small_seed) -> None:
    result = run_module("embeddings_copy", copy_args(max_reject_ratio=0.001))
    assert result["failed"]
    assert "11 rows rejected (1.0816%), above max_reject_ratio 0.1000%" in result["msg"]
    assert result["migrated"] == 1006
    assert_milvus_equals_the_valid_source(small_seed)


def test_resume_from_an_id_copies_only_what_follows(copy_args) -> None:
    result = run_module("embeddings_copy", copy_args(resume_from="media-0000899", batch_size=50))
    assert result["started_from"] == "resume_from=media-0000899"
    stored = set(all_ids(milvus_client(), COLLECTION))
    assert "media-0000899" not in stored and "media-0000900" in stored and "media-0000000" not in stored
    assert "tricky-ünïcødé-東京-🎬" in stored  # sorts after media-..., so it follows
    assert "424242" not in stored  # sorts before media-0000899


def test_kill_9_at_random_moments_then_resume_loses_nothing(copy_args, small_seed, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    extra = playbook_vars(tmp_path, batch_size=10, concurrency=3)
    rng = random.Random(20261124)
    kills = 0
    for target in sorted(rng.sample(range(3, 90), 3)):
        kill_copy_after_batches(extra, checkpoint, target)
        kills += 1
    assert kills == 3
    done = run_playbook("playbooks/migrate-embeddings.yml", "-e", extra)
    assert done.returncode == 0, done.stdout[-2000:]
    final = json.loads(checkpoint.read_text())
    assert final["complete"] and final["migrated"] == 1006 and final["rejected"] == 11
    assert_milvus_equals_the_valid_source(small_seed)


def test_progress_reaches_the_pushgateway(copy_args) -> None:
    result = run_module("embeddings_copy", copy_args(pushgateway_url="http://127.0.0.1:9092", metrics_interval=1))
    assert result.get("metrics_push_failures") == 0
    with urllib.request.urlopen("http://127.0.0.1:9092/metrics", timeout=10) as response:
        text = response.read().decode()
    lines = [line for line in text.splitlines() if 'job="migrate_embeddings"' in line]
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in lines}
    assert values["migration_migrated_items"] == 1006
    assert values["migration_total_items"] == 1017
    assert values["migration_rejected_items"] == 11
    assert values["migration_running"] == 0


def test_runs_under_async_and_poll_zero(copy_args) -> None:
    args = json.dumps(copy_args())
    command = [str(BIN / "ansible"), "localhost", "-m", "embeddings_copy", "-a", args, "-B", "600", "-P", "0"]
    started = subprocess.run(command, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=120)
    job = json.loads(started.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["ansible_job_id"]
    for _ in range(120):
        status = run_module("ansible.builtin.async_status", {"jid": job})
        if status.get("finished"):
            break
        time.sleep(1)
    assert status["finished"] and status["migrated"] == 1006
