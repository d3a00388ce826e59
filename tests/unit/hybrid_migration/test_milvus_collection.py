from __future__ import annotations

import pytest
from ansible.module_utils.hybrid_migration.errors import TerminalError
from ansible.module_utils.hybrid_migration.milvus_collection import (
    CollectionSpec,
    ObservedCollection,
    hnsw_parameters,
    plan_collection,
    resolve_spec,
)

SPEC = CollectionSpec("media_embeddings", 768, "COSINE", 16, 256, 512)


def matching(**changes) -> ObservedCollection:
    observed = ObservedCollection(
        exists=True,
        id_type="VARCHAR",
        id_max_length=512,
        auto_id=False,
        dimension=768,
        fields=["id", "embedding", "updated_at"],
        index={"name": "embedding", "index_type": "HNSW", "metric_type": "COSINE", "M": 16, "efConstruction": 256},
        loaded=True,
    )
    for key, value in changes.items():
        setattr(observed, key, value)
    return observed


def test_absent_collection_is_created_indexed_and_loaded() -> None:
    plan = plan_collection(SPEC, ObservedCollection(exists=False))
    assert plan.actions == ["create collection", "create index", "load collection"] and plan.changed


def test_matching_collection_needs_nothing() -> None:
    assert not plan_collection(SPEC, matching()).changed


def test_released_collection_is_loaded() -> None:
    assert plan_collection(SPEC, matching(loaded=False)).actions == ["load collection"]


def test_other_hnsw_parameters_rebuild_the_index() -> None:
    observed = matching(
        index={"name": "e", "index_type": "HNSW", "metric_type": "COSINE", "M": 8, "efConstruction": 128}
    )
    assert plan_collection(SPEC, observed).actions == ["rebuild index", "load collection"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"dimension": 128}, "is 128-d, expected 768-d"),
        ({"id_type": "INT64"}, "primary key 'id' is INT64, expected VARCHAR"),
        ({"auto_id": True}, "with auto id"),
        ({"id_max_length": 64}, "holds 64 bytes, 512 needed"),
        ({"fields": ["id", "embedding"]}, "fields ['updated_at'] are missing"),
        (
            {"index": {"name": "e", "index_type": "HNSW", "metric_type": "L2", "M": 16, "efConstruction": 256}},
            "index metric is L2, expected COSINE",
        ),
    ],
)
def test_incompatible_schemas_are_problems_never_actions(changes: dict, problem: str) -> None:
    plan = plan_collection(SPEC, matching(**changes))
    assert plan.actions == []
    assert any(problem in text for text in plan.problems)


def test_profiles_and_overrides() -> None:
    assert hnsw_parameters("high_accuracy", None, None) == (32, 512)
    assert hnsw_parameters("fast", None, None) == (8, 128)
    assert hnsw_parameters("balanced", 24, None) == (24, 256)
    with pytest.raises(TerminalError, match="unknown hnsw_profile"):
        hnsw_parameters("turbo", None, None)
    with pytest.raises(TerminalError, match="hnsw_m 1"):
        hnsw_parameters("balanced", 1, None)


def test_spec_takes_dimension_and_metric_from_the_index_unless_given() -> None:
    index = {"name": "media_embedding", "similarity_function": "euclidean", "dimension": 512}
    spec = resolve_spec("c", index, None, None, "balanced", None, None, 512)
    assert (spec.dimension, spec.metric) == (512, "L2")
    spec = resolve_spec("c", index, 768, "IP", "fast", None, None, 512)
    assert (spec.dimension, spec.metric, spec.hnsw_m) == (768, "IP", 8)
    with pytest.raises(TerminalError, match="cannot tell the collection's metric and dimension"):
        resolve_spec("c", None, None, None, "balanced", None, None, 512)
