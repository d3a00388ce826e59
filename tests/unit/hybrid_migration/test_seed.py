from __future__ import annotations

import math

import numpy as np
from ansible.module_utils.hybrid_migration import seed
from ansible.module_utils.hybrid_migration.seed import SeedPlan
from ansible.module_utils.hybrid_migration.settings import SourceModel

MODEL = SourceModel()


def _first_rows(plan: SeedPlan) -> list[dict]:
    return next(seed.media_chunks(plan, MODEL))


def test_same_seed_gives_the_same_media() -> None:
    plan = SeedPlan(media_count=50, dimensions=16)
    assert _first_rows(plan) == _first_rows(plan)


def test_another_seed_gives_other_vectors() -> None:
    first = _first_rows(SeedPlan(media_count=5, dimensions=16, random_seed=1))[0]["props"]["embedding"]
    second = _first_rows(SeedPlan(media_count=5, dimensions=16, random_seed=2))[0]["props"]["embedding"]
    assert first != second


def test_media_are_normalised_with_the_requested_dimension() -> None:
    rows = [row for chunk in seed.media_chunks(SeedPlan(media_count=2500, dimensions=32), MODEL) for row in chunk]
    assert len(rows) == 2500
    vectors = np.array([row["props"]["embedding"] for row in rows])
    assert vectors.shape == (2500, 32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_media_ids_sort_in_creation_order_and_are_unique() -> None:
    ids = [
        row["props"]["id"]
        for chunk in seed.media_chunks(SeedPlan(media_count=3000, dimensions=4), MODEL)
        for row in chunk
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3000


def test_property_names_follow_the_source_model() -> None:
    model = SourceModel(id_property="uid", embedding_property="vec", updated_at_property="changed")
    props = next(seed.media_chunks(SeedPlan(media_count=1, dimensions=4), model))[0]["props"]
    assert {"uid", "vec", "changed"} <= set(props)


def test_tricky_ids_include_the_maximum_length() -> None:
    ids = [row["id"] for row in seed.tricky_media(SeedPlan(dimensions=4, id_max_length=64), MODEL)]
    assert any('"' in i for i in ids) and any("\\" in i for i in ids)
    assert any(not i.isascii() for i in ids)
    assert max(len(i.encode()) for i in ids if i.isascii()) == 64


def test_bad_media_cover_every_kind_of_bad_input_in_the_rules() -> None:
    rows, records = seed.bad_media(SeedPlan(dimensions=8, id_max_length=16), MODEL)
    kinds = {record.kind for record in records}
    assert kinds == {
        "missing_embedding",
        "wrong_dimension",
        "not_finite",
        "not_numeric",
        "empty_id",
        "missing_id",
        "id_too_long",
        "duplicate_id",
    }
    by_title = {row["title"]: row for row in rows}
    nan_row = next(
        row for title, row in by_title.items() if "not_finite" in title and any(map(math.isnan, row["embedding"]))
    )
    assert len(nan_row["embedding"]) == 8
    assert any(row.get("id") == "" for row in rows)
    assert any("id" not in row for row in rows)
    assert any(isinstance(row.get("id"), str) and len(row["id"]) == 17 for row in rows)
    assert {row.get("id") for row in rows} >= {424242, "424242"}


def test_redis_bad_records_are_data_with_commands() -> None:
    entries = seed.redis_bad_records("agentdb:")
    kinds = {record.kind for record, _ in entries}
    assert {
        "qvalue_not_numeric",
        "experience_bad_json",
        "experience_reward_not_numeric",
        "policy_bad_json",
        "wrong_type",
    } <= kinds
    for record, operations in entries:
        assert record.store == "redis" and record.expected_reason
        assert operations, record.kind
        for method, _, _ in operations:
            assert method in {"hset", "xadd", "sadd", "set"}


def test_catalogue_is_empty_without_bad_records() -> None:
    assert seed.bad_record_catalogue(SeedPlan(bad_records=False), MODEL, "agentdb:") == []
    assert len(seed.bad_record_catalogue(SeedPlan(bad_records=True), MODEL, "agentdb:")) == 23


def test_fingerprint_changes_with_every_parameter() -> None:
    base = SeedPlan()
    assert base.fingerprint(MODEL, "agentdb:") == SeedPlan().fingerprint(MODEL, "agentdb:")
    assert base.fingerprint(MODEL, "agentdb:") != SeedPlan(media_count=1).fingerprint(MODEL, "agentdb:")
    assert base.fingerprint(MODEL, "agentdb:") != base.fingerprint(MODEL, "other:")
    assert base.fingerprint(MODEL, "agentdb:") != base.fingerprint(SourceModel(label="Film"), "agentdb:")


def test_users_watch_existing_media_and_similar_edges_skip_self_loops() -> None:
    plan = SeedPlan(media_count=30, user_count=5, watched_per_user=4, dimensions=4)
    users = next(seed.user_chunks(plan))
    assert len(users) == 5
    media = {seed.media_id(i) for i in range(30)}
    assert all(w["media"] in media and 1 <= w["rating"] <= 5 for user in users for w in user["watched"])
    edges = [edge for chunk in seed.similar_chunks(plan) for edge in chunk]
    assert edges and all(edge["a"] != edge["b"] for edge in edges)
