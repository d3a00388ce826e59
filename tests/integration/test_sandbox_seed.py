"""sandbox_seed against the real Neo4j and Redis: check mode, apply, idempotence, content."""

from __future__ import annotations

import json
import math

import neo4j
import numpy as np
import redis
from ansible.module_utils.hybrid_migration import seed
from ansible.module_utils.hybrid_migration.settings import SourceModel

from .conftest import CONNECTIONS, SANDBOX, SMALL_SEED, run_module

NEO4J = ("bolt://127.0.0.1:7687", ("neo4j", "sandbox-neo4j-secret"))


def seed_args(**overrides) -> dict:
    return {
        "neo4j": CONNECTIONS["neo4j"],
        "redis": CONNECTIONS["redis"],
        "source": "{{ neo4j_source }}",
        **SMALL_SEED,
        **overrides,
    }


def neo4j_scalar(query: str, **parameters):
    with neo4j.GraphDatabase.driver(NEO4J[0], auth=NEO4J[1]) as driver:
        records, _, _ = driver.execute_query(query, parameters)
        return records[0][0]


def redis_client() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=6379, password="sandbox-redis-secret")


def test_seeded_graph_has_the_data_model(small_seed) -> None:
    assert small_seed["neo4j"]["action"] in {"seed", "reset and seed", "none"}
    assert neo4j_scalar("MATCH (m:Media) WHERE m.id STARTS WITH 'media-' RETURN count(m)") == 1000
    assert neo4j_scalar("MATCH (m:Media) RETURN count(m)") == 1000 + 5 + 12
    assert neo4j_scalar("MATCH (:User)-[w:WATCHED]->(:Media) RETURN count(w)") == 50 * 20
    assert neo4j_scalar("MATCH (:Media)-[:IN_GENRE]->(:Genre) RETURN count(*)") > 1000
    assert neo4j_scalar("MATCH (:Media)-[s:SIMILAR_TO]->(:Media) RETURN min(s.score)") >= 0.5
    assert (
        neo4j_scalar(
            "SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties WHERE name = 'media_id_unique' "
            "RETURN labelsOrTypes[0] + '.' + properties[0]"
        )
        == "Media.id"
    )
    assert neo4j_scalar(
        "SHOW VECTOR INDEXES YIELD name, state, options WHERE name = 'media_embedding' "
        "RETURN [state, options.indexConfig.`vector.dimensions`, options.indexConfig.`vector.similarity_function`]"
    ) == ["ONLINE", 768, "COSINE"]


def test_embeddings_are_deterministic_and_normalised(small_seed) -> None:
    plan = seed.SeedPlan(**{k: v for k, v in SMALL_SEED.items()})
    expected = next(seed.media_chunks(plan, SourceModel()))[7]["props"]
    stored = neo4j_scalar("MATCH (m:Media {id: $id}) RETURN m.embedding", id=expected["id"])
    assert stored == expected["embedding"]
    assert math.isclose(float(np.linalg.norm(stored)), 1.0, rel_tol=1e-5)


def test_tricky_ids_round_trip_exactly(small_seed) -> None:
    for item_id in small_seed["tricky_ids"]:
        assert neo4j_scalar("MATCH (m:Media {id: $id}) RETURN count(m)", id=item_id) == 1, item_id
    assert any(len(i) == 512 for i in small_seed["tricky_ids"])


def test_every_bad_record_is_in_the_stores_and_the_manifest(small_seed) -> None:
    manifest = json.loads((SANDBOX / "test-seed-manifest.json").read_text())
    assert manifest["bad_records"] == small_seed["bad_records"]
    neo4j_bad = [r for r in small_seed["bad_records"] if r["store"] == "neo4j"]
    assert len(neo4j_bad) == 11
    assert [r["key"] for r in neo4j_bad if r["kind"] == "duplicate_id"] == ["424242"]
    assert neo4j_scalar("MATCH (m:Media) WHERE m.id IS NULL RETURN count(m)") == 1
    assert neo4j_scalar("MATCH (m:Media) WHERE m.id = '' RETURN count(m)") == 1
    assert neo4j_scalar("MATCH (m:Media) WHERE m.id = 424242 RETURN count(m)") == 1
    assert neo4j_scalar("MATCH (m:Media {id: 'bad-nan'}) RETURN any(x IN m.embedding WHERE isNaN(x))")
    assert neo4j_scalar("MATCH (m:Media {id: 'bad-missing-embedding'}) RETURN m.embedding IS NULL")
    client = redis_client()
    assert client.type("agentdb:agent:agent-bad-wrong-type:qvalues") == b"string"
    assert client.hget("agentdb:agent:agent-0000:qvalues", "bad-state|play") == b"not-a-number"
    assert client.sismember("agentdb:agents", "agent-bad-dangling")
    assert not client.exists("agentdb:agent:agent-bad-dangling")


def test_agentdb_layout(small_seed) -> None:
    client = redis_client()
    agent = client.hgetall("agentdb:agent:agent-0003")
    assert {b"name", b"kind", b"version", b"created_at", b"config"} <= set(agent)
    json.loads(agent[b"config"])
    policy = json.loads(client.get("agentdb:agent:agent-0003:policy"))
    assert {"version", "epsilon", "temperature", "weights", "updated_at"} <= set(policy)
    assert client.xlen("agentdb:agent:agent-0003:experiences") == 40
    entry_id, fields = client.xrange("agentdb:agent:agent-0003:experiences", count=1)[0]
    assert set(fields) == {b"state", b"action", b"reward", b"next_state", b"done", b"ts"}
    assert entry_id.decode() == f"{fields[b'ts'].decode()}-0"
    field, value = next(iter(client.hgetall("agentdb:agent:agent-0003:qvalues").items()))
    assert b"|" in field
    float(value)


def test_same_seed_again_changes_nothing_in_either_mode(small_seed) -> None:
    assert not run_module("sandbox_seed", seed_args(), check=True)["changed"]
    assert not run_module("sandbox_seed", seed_args())["changed"]


def test_other_data_is_refused_and_check_mode_writes_nothing(small_seed) -> None:
    refused = run_module("sandbox_seed", seed_args(media_count=1001))
    assert refused["failed"]
    assert "already holds" in refused["msg"] and "seed_reset=true" in refused["msg"]
    planned = run_module("sandbox_seed", seed_args(media_count=1001, reset=True), check=True)
    assert planned["changed"] and planned["neo4j"]["action"] == "reset and seed"
    assert neo4j_scalar("MATCH (m:Media) WHERE m.id STARTS WITH 'media-' RETURN count(m)") == 1000


def test_secrets_stay_out_of_the_result(small_seed) -> None:
    text = json.dumps(run_module("sandbox_seed", seed_args()))
    assert "sandbox-neo4j-secret" not in text and "sandbox-redis-secret" not in text
