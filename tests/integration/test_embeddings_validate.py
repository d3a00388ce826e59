"""embeddings_validate on the real Neo4j and Milvus: every kind of inconsistency found exactly, repaired,
re-checked; the gate; uniform sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ansible.module_utils.hybrid_migration.milvus_reader import id_filter

from .conftest import CONNECTIONS, drop_collection, ensure_test_collection, milvus_client, run_module
from .test_embeddings_copy import EXPECTED_REJECTS, assert_milvus_equals_the_valid_source

COLLECTION = "it_validate"
QUOTED = 'tricky-"double"-quote'


@pytest.fixture(scope="module")
def copied(small_seed, tmp_path_factory):
    """The small seed copied into a collection of its own."""
    ensure_test_collection(COLLECTION)
    state = tmp_path_factory.mktemp("validate")
    result = run_module(
        "embeddings_copy",
        {
            "neo4j": CONNECTIONS["neo4j"],
            "milvus": CONNECTIONS["milvus"],
            "source": "{{ neo4j_source }}",
            "collection": COLLECTION,
            "checkpoint_file": str(state / "checkpoint.json"),
            "reject_file": str(state / "rejects.jsonl"),
            "max_reject_ratio": 0.05,
        },
    )
    assert not result.get("failed"), result.get("msg")
    yield small_seed
    drop_collection(COLLECTION)


def validate(check: bool = False, **options) -> dict:
    args = {
        "neo4j": CONNECTIONS["neo4j"],
        "milvus": CONNECTIONS["milvus"],
        "source": "{{ neo4j_source }}",
        "collection": COLLECTION,
        "full_scan": True,
        **options,
    }
    return run_module("embeddings_validate", args, check=check)


def counts(result: dict) -> dict[str, int]:
    return {name: category["count"] for name, category in result["categories"].items()}


CLEAN = {"missing_in_milvus": 0, "vector_mismatch": 0, "orphan_in_milvus": 0, "dimension_mismatch": 2}


def test_clean_copy_is_100_percent_with_the_seeded_rejects_by_reason(copied) -> None:
    result = validate()
    assert not result.get("failed"), result.get("msg")
    assert result["success_rate"] == 1.0 and result["matching"] == result["source_rows"] == 1006
    assert counts(result) == CLEAN and result["milvus_rows"] == 1006
    assert result["source_rejected_by_kind"] == EXPECTED_REJECTS
    assert result["changed"] is False and result["max_distance"] < 1e-5


def inject(client) -> dict[str, str]:
    """Delete an item (one with a quote in its id), alter a vector, add an orphan."""
    altered = np.random.default_rng(3).random(768).astype(np.float32).tolist()
    client.delete(COLLECTION, filter=id_filter([QUOTED]))
    client.upsert(
        COLLECTION,
        [
            {"id": "media-0000500", "embedding": altered, "updated_at": 1},
            {"id": "orphan-\\back'slash", "embedding": altered, "updated_at": 1},
        ],
    )
    return {"missing_in_milvus": QUOTED, "vector_mismatch": "media-0000500", "orphan_in_milvus": "orphan-\\back'slash"}


def test_each_injected_inconsistency_is_found_exactly_then_repaired(copied) -> None:
    client = milvus_client()
    injected = inject(client)

    found = validate()
    assert not found.get("failed"), found.get("msg")
    assert counts(found) == {**CLEAN, "missing_in_milvus": 1, "vector_mismatch": 1, "orphan_in_milvus": 1}
    for category, item_id in injected.items():
        assert found["categories"][category]["samples"] == [item_id]
    assert found["matching"] == 1004 and found["success_rate"] == pytest.approx(1004 / 1006, abs=1e-6)

    gated = validate(min_success_rate=0.999)
    assert gated["failed"] and "points below min_success_rate 99.9000%" in gated["msg"]
    assert "1 missing in milvus, 1 vector mismatch, 1 orphan in milvus" in gated["msg"]

    preview = validate(check=True, fix_inconsistencies=True)
    assert preview["changed"] and preview["fix"]["upserted"] == 2 and preview["fix"]["deleted"] == 1
    assert counts(validate()) == counts(found), "check mode wrote to Milvus"

    fixed = validate(fix_inconsistencies=True, min_success_rate=1.0)
    assert not fixed.get("failed"), fixed.get("msg")
    assert fixed["changed"] and fixed["fix"]["verified"] == 3 and fixed["fix"]["remaining"] == 0
    assert fixed["fix"]["success_rate_after"] == 1.0

    for check in (True, False):
        again = validate(check=check, fix_inconsistencies=True, min_success_rate=1.0)
        assert not again.get("failed") and not again["changed"] and counts(again) == CLEAN
        assert again["success_rate"] == 1.0
    assert_milvus_equals_the_valid_source(copied, COLLECTION)


def test_sample_is_drawn_over_the_whole_id_space(copied) -> None:
    client = milvus_client()
    tail = [f"media-{n:07d}" for n in range(900, 1000)]
    client.delete(COLLECTION, filter=id_filter(tail))
    try:
        sampled = validate(full_scan=False, sample_size=300, min_success_rate=0.5)
        assert sampled["mode"] == "sample" and sampled["source_rows"] >= 290
        # The last tenth of the ids is gone: a sample of the first 300 ids would find none of it.
        assert 5 <= sampled["categories"]["missing_in_milvus"]["count"] <= 70
        assert sampled["categories"]["orphan_in_milvus"]["checked"] is False
    finally:
        validate(fix_inconsistencies=True)
    assert counts(validate()) == CLEAN


def test_a_missing_collection_fails_clearly_and_a_dry_run_does_not(copied) -> None:
    result = run_module(
        "embeddings_validate",
        {"neo4j": CONNECTIONS["neo4j"], "milvus": CONNECTIONS["milvus"], "collection": "it_no_such_collection"},
    )
    assert result["failed"] and "does not exist" in result["msg"]
    dry = run_module(
        "embeddings_validate",
        {"neo4j": CONNECTIONS["neo4j"], "milvus": CONNECTIONS["milvus"], "collection": "it_no_such_collection"},
        check=True,
    )
    assert not dry.get("failed") and "nothing to compare" in dry["message"]


def test_secrets_never_reach_the_result(copied, tmp_path: Path) -> None:
    result = validate()
    text = str(result)
    assert "sandbox-neo4j-secret" not in text
