"""milvus_collection on the real Milvus: check mode, apply, idempotence, refusals."""

from __future__ import annotations

import pytest

from .conftest import CONNECTIONS, drop_collection, milvus_client, run_module

NAME = "it_collection"


def args(**overrides) -> dict:
    return {
        "milvus": CONNECTIONS["milvus"],
        "neo4j": CONNECTIONS["neo4j"],
        "source": "{{ neo4j_source }}",
        "collection": NAME,
        **overrides,
    }


@pytest.fixture()
def no_collection():
    drop_collection(NAME)
    yield
    drop_collection(NAME)


def test_check_apply_and_rerun(small_seed, no_collection) -> None:
    planned = run_module("milvus_collection", args(), check=True, diff=True)
    assert planned["changed"] and planned["actions"] == ["create collection", "create index", "load collection"]
    assert "FLOAT_VECTOR(768)" in planned["diff"]["after"]
    client = milvus_client()
    assert not client.has_collection(NAME), "check mode created the collection"

    applied = run_module("milvus_collection", args())
    assert applied["changed"]
    description = client.describe_collection(NAME)
    fields = {f["name"]: f for f in description["fields"]}
    assert fields["id"]["is_primary"] and not description["auto_id"]
    assert fields["id"]["params"]["max_length"] == 512
    assert fields["embedding"]["params"]["dim"] == 768
    index = client.describe_index(NAME, client.list_indexes(NAME)[0])
    assert (index["index_type"], index["metric_type"], int(index["M"]), int(index["efConstruction"])) == (
        "HNSW",
        "COSINE",
        16,
        256,
    )
    assert client.get_load_state(NAME)["state"].name == "Loaded"

    for check in (True, False):
        again = run_module("milvus_collection", args(), check=check)
        assert not again["changed"] and again["actions"] == []


def test_another_profile_rebuilds_the_index_and_keeps_the_rows(small_seed, no_collection) -> None:
    run_module("milvus_collection", args())
    client = milvus_client()
    client.insert(NAME, [{"id": "keep-me", "embedding": [0.1] * 768, "updated_at": 1}])
    rebuilt = run_module("milvus_collection", args(hnsw_profile="fast"))
    assert rebuilt["changed"] and rebuilt["actions"] == ["rebuild index", "load collection"]
    index = client.describe_index(NAME, client.list_indexes(NAME)[0])
    assert (int(index["M"]), int(index["efConstruction"])) == (8, 128)
    assert client.get(NAME, ids=["keep-me"])[0]["id"] == "keep-me"
    assert not run_module("milvus_collection", args(hnsw_profile="fast"))["changed"]


def test_an_incompatible_collection_is_refused_and_left_alone(small_seed, no_collection) -> None:
    run_module("milvus_collection", args(dimension=128, metric="L2"))
    client = milvus_client()
    client.insert(NAME, [{"id": "old", "embedding": [0.5] * 128, "updated_at": 1}])
    refused = run_module("milvus_collection", args())
    assert refused["failed"]
    assert "incompatible schema" in refused["msg"]
    assert "vector field 'embedding' is 128-d, expected 768-d" in refused["msg"]
    assert "index metric is L2, expected COSINE" in refused["msg"]
    assert client.get(NAME, ids=["old"])[0]["id"] == "old"


def test_without_an_index_the_metric_must_be_given(small_seed, no_collection) -> None:
    result = run_module("milvus_collection", args(source={"vector_index": "no_such_index"}))
    assert result["failed"] and "cannot tell the collection's metric and dimension" in result["msg"]
    explicit = run_module(
        "milvus_collection", {"milvus": CONNECTIONS["milvus"], "collection": NAME, "dimension": 64, "metric": "IP"}
    )
    assert explicit["changed"] and explicit["collection"]["index"]["metric"] == "IP"
