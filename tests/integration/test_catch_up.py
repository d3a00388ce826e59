"""Catch-up on the real servers: Neo4j nodes updated, created and deleted while the copy runs, then
catch-up plus a full validation with repair end with Milvus equal to Neo4j."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import neo4j
import numpy as np
import pytest

from .conftest import CONNECTIONS, drop_collection, ensure_test_collection, run_module

COLLECTION = "it_catch_up"
PREFIX = "cc-"
NODES = 3000


def driver() -> neo4j.Driver:
    return neo4j.GraphDatabase.driver("bolt://127.0.0.1:7687", auth=("neo4j", "sandbox-neo4j-secret"))


def unit_vectors(count: int, seed: int) -> list[list[float]]:
    values = np.random.default_rng(seed).standard_normal((count, 768)).astype(np.float32)
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).tolist()


@pytest.fixture()
def extra_nodes(small_seed):
    """NODES media of our own beside the seed's, removed afterwards."""
    with driver() as db:
        vectors = unit_vectors(NODES, 11)
        for start in range(0, NODES, 500):
            rows = [
                {"id": f"{PREFIX}{n:05d}", "embedding": vectors[n], "updated_at": 1_700_000_000_000}
                for n in range(start, min(start + 500, NODES))
            ]
            db.execute_query("UNWIND $rows AS row CREATE (m:Media) SET m = row", {"rows": rows})
    ensure_test_collection(COLLECTION)
    yield
    with driver() as db:
        db.execute_query("MATCH (m:Media) WHERE m.id STARTS WITH $prefix DETACH DELETE m", {"prefix": PREFIX})
        db.execute_query("MATCH (m:NoStamp) DETACH DELETE m")
    drop_collection(COLLECTION)


class Writer(threading.Thread):
    """Updates, creates and deletes our nodes as an application would, until told to stop."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.updated: set[str] = set()
        self.created: set[str] = set()
        self.deleted: set[str] = set()
        self.rng = random.Random(5)
        self.vectors = iter(unit_vectors(20000, 12))
        self.busy = threading.Event()

    def changes(self) -> int:
        return len(self.updated) + len(self.created) + len(self.deleted)

    def run(self) -> None:
        vectors = self.vectors
        with driver() as db:
            while not self.stop.is_set():
                now = int(time.time() * 1000)
                action = self.rng.random()
                if action < 0.6:
                    item = f"{PREFIX}{self.rng.randrange(NODES):05d}"
                    if item in self.deleted:
                        continue
                    db.execute_query(
                        "MATCH (m:Media {id: $id}) SET m.embedding = $e, m.updated_at = $now",
                        {"id": item, "e": next(vectors), "now": now},
                    )
                    self.updated.add(item)
                elif action < 0.85:
                    item = f"{PREFIX}new-{len(self.created):05d}"
                    db.execute_query(
                        "CREATE (m:Media {id: $id, embedding: $e, updated_at: $now})",
                        {"id": item, "e": next(vectors), "now": now},
                    )
                    self.created.add(item)
                else:
                    item = f"{PREFIX}{self.rng.randrange(NODES):05d}"
                    db.execute_query("MATCH (m:Media {id: $id}) DETACH DELETE m", {"id": item})
                    self.deleted.add(item)
                if self.updated and self.created and self.deleted:
                    self.busy.set()
                time.sleep(0.002)


def copy_args(tmp_path: Path, **overrides) -> dict:
    return {
        "neo4j": CONNECTIONS["neo4j"],
        "milvus": CONNECTIONS["milvus"],
        "source": "{{ neo4j_source }}",
        "collection": COLLECTION,
        "checkpoint_file": str(tmp_path / "checkpoint.json"),
        "reject_file": str(tmp_path / "rejects.jsonl"),
        "max_reject_ratio": 0.05,
        "batch_size": 50,
        "concurrency": 1,
        **overrides,
    }


def validate(**options) -> dict:
    args = {"neo4j": CONNECTIONS["neo4j"], "milvus": CONNECTIONS["milvus"], "collection": COLLECTION}
    return run_module("embeddings_validate", {**args, "full_scan": True, **options})


def test_changes_during_the_copy_end_equal_after_catch_up_and_repair(extra_nodes, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    writer = Writer()
    outcome: dict = {}
    copy = threading.Thread(target=lambda: outcome.update(run_module("embeddings_copy", copy_args(tmp_path))))
    writer.start()
    assert writer.busy.wait(60), "the writer made no changes"
    changes_before_copy = writer.changes()
    copy.start()
    while copy.is_alive():  # stop writing once the main copy is done: catch-up starts from here
        try:
            if json.loads(checkpoint.read_text()).get("complete"):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    writer.stop.set()
    writer.join()
    copy.join()
    assert not outcome.get("failed"), outcome.get("msg")
    assert writer.changes() > changes_before_copy, "the writer did not overlap the copy"
    catch_up = outcome["catch_up"]
    assert catch_up["available"] and catch_up["settled"] and catch_up["copied"] > 0, catch_up

    # Catch-up leaves only the deletes behind: orphans, never missing or stale rows.
    after_catch_up = validate()
    assert not after_catch_up.get("failed"), after_catch_up.get("msg")
    categories = after_catch_up["categories"]
    assert categories["missing_in_milvus"]["count"] == 0, categories
    assert categories["vector_mismatch"]["count"] == 0, categories
    assert categories["orphan_in_milvus"]["count"] <= len(writer.deleted)
    assert set(categories["orphan_in_milvus"]["samples"]) <= writer.deleted

    repaired = validate(fix_inconsistencies=True, min_success_rate=1.0)
    assert not repaired.get("failed"), repaired.get("msg")
    final = validate(min_success_rate=1.0)
    assert not final.get("failed"), final.get("msg")
    assert final["success_rate"] == 1.0
    assert {name: c["count"] for name, c in final["categories"].items() if name != "dimension_mismatch"} == {
        "missing_in_milvus": 0,
        "vector_mismatch": 0,
        "orphan_in_milvus": 0,
    }

    again = run_module("embeddings_copy", copy_args(tmp_path))
    assert not again.get("failed") and not again["changed"] and again["catch_up"]["copied"] == 0


def test_without_an_updated_at_property_the_result_says_so(extra_nodes, tmp_path: Path) -> None:
    with driver() as db:
        db.execute_query(
            "UNWIND range(1, 5) AS n CREATE (:NoStamp {id: 'ns-' + n, embedding: $e})", {"e": unit_vectors(1, 1)[0]}
        )
    result = run_module("embeddings_copy", copy_args(tmp_path, source={"label": "NoStamp"}))
    assert not result.get("failed"), result.get("msg")
    assert result["migrated"] == 5
    assert result["catch_up"]["available"] is False
    assert "updated_at" in result["catch_up"]["reason"] and "fix_inconsistencies=true" in result["catch_up"]["reason"]
