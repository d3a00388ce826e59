"""Deterministic sandbox data: the graph in Neo4j and the AgentDB in Redis.

Realistic enough to exercise every phase (normalised 768-d embeddings, users,
genres, similarity edges, RL agents with q-values, policies and experience
streams) and, on request, a documented catalogue of bad records of every kind
MISSION.md's rules list, so later phases can prove they reject each with its
reason while the rest still moves.

The same ``random_seed`` and plan always produce the same data: every chunk of
1000 items draws from a generator seeded with ``(random_seed, chunk)``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import TerminalError
from .settings import SourceModel, quote_identifier

if TYPE_CHECKING:
    import neo4j
    import redis as redis_lib

CHUNK = 1000
BASE_EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: fixed so data is reproducible
GENRES = [
    "action", "adventure", "animation", "biography", "comedy", "crime", "documentary",
    "drama", "family", "fantasy", "history", "horror", "music", "mystery", "romance",
    "science-fiction", "sport", "thriller", "war", "western",
]  # fmt: skip
KINDS = ["movie", "series", "documentary", "short"]
AGENT_KINDS = ["dqn", "ppo", "bandit", "sarsa"]
ACTIONS = ["play", "skip", "like", "share", "browse"]
SEED_MARKER_LABEL = "SandboxSeed"
REDIS_SEED_MARKER = "sandbox:seed"


@dataclass(frozen=True)
class SeedPlan:
    """How much data to make and of what shape."""

    media_count: int = 20000
    dimensions: int = 768
    user_count: int = 1000
    watched_per_user: int = 20
    similar_per_media: int = 3
    agent_count: int = 20
    experiences_per_agent: int = 500
    qvalues_per_agent: int = 200
    bad_records: bool = False
    random_seed: int = 42
    id_max_length: int = 512
    similarity_function: str = "cosine"

    def fingerprint(self, model: SourceModel, key_prefix: str) -> str:
        """A short hash of everything that shapes the data, stored beside it."""
        text = json.dumps([asdict(self), asdict(model), key_prefix, GENERATOR_VERSION], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class BadRecord:
    """One deliberately broken record and the rejection it must earn."""

    store: str
    key: str
    kind: str
    expected_reason: str


@dataclass
class SeedResult:
    """What the seeder did (or, in check mode, would do)."""

    changed: bool = False
    fingerprint: str = ""
    neo4j: dict[str, Any] = field(default_factory=dict)
    redis: dict[str, Any] = field(default_factory=dict)
    bad_records: list[dict[str, str]] = field(default_factory=list)
    tricky_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0


def media_id(index: int) -> str:
    """Ids sort in creation order, so keyset pagination sees them in sequence."""
    return f"media-{index:07d}"


LATENT_DIMENSIONS = 12
# Bumped whenever the generated data changes shape, so a sandbox seeded by an older version is replaced.
GENERATOR_VERSION = 3


def embedding_basis(dimensions: int) -> np.ndarray:
    """A fixed map from a small latent space into the embedding space (the same for every seed)."""
    return np.random.default_rng([7, dimensions]).standard_normal((LATENT_DIMENSIONS, dimensions), dtype=np.float32)


def normalised_vectors(rng: np.random.Generator, rows: int, dimensions: int) -> np.ndarray:
    """Unit-length float32 vectors with structure, as embedding models produce.

    Points of a low-dimensional latent space mapped into the full dimension plus a little noise:
    real embeddings have that shape, and it gives nearest neighbours that approximate indexes
    (Neo4j's, Milvus's HNSW) agree on. Uniformly random 768-d vectors would not: all their
    distances are nearly equal, so any two indexes return different "nearest" items.
    """
    latent = rng.standard_normal((rows, LATENT_DIMENSIONS), dtype=np.float32)
    vectors = latent @ embedding_basis(dimensions)
    vectors += 0.5 * rng.standard_normal((rows, dimensions), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def media_chunks(plan: SeedPlan, model: SourceModel) -> Iterator[list[dict[str, Any]]]:
    """Media rows in chunks of ``CHUNK``: node properties plus genre names."""
    for chunk_index, start in enumerate(range(0, plan.media_count, CHUNK)):
        rng = np.random.default_rng([plan.random_seed, 1, chunk_index])
        count = min(CHUNK, plan.media_count - start)
        vectors = normalised_vectors(rng, count, plan.dimensions).astype(np.float64)
        kinds = rng.integers(0, len(KINDS), count)
        years = rng.integers(1950, 2026, count)
        genre_counts = rng.integers(1, 4, count)
        rows = []
        for offset in range(count):
            index = start + offset
            genres = sorted({GENRES[g] for g in rng.integers(0, len(GENRES), genre_counts[offset])})
            rows.append(
                {
                    "props": {
                        model.id_property: media_id(index),
                        "title": f"Title {index}",
                        "kind": KINDS[kinds[offset]],
                        "genres": genres,
                        "release_year": int(years[offset]),
                        model.embedding_property: vectors[offset].tolist(),
                        model.updated_at_property: BASE_EPOCH_MS + index * 1000,
                    },
                    "genres": genres,
                }
            )
        yield rows


def tricky_media(plan: SeedPlan, model: SourceModel) -> list[dict[str, Any]]:
    """Valid items whose ids are hard to carry: quotes, backslashes, non-ASCII, maximum length."""
    ids = [
        'tricky-"double"-quote',
        "tricky-'single'-quote",
        "tricky-back\\slash\\",
        "tricky-ünïcødé-東京-🎬",
        "tricky-" + "m" * (plan.id_max_length - len("tricky-")),
    ]
    rng = np.random.default_rng([plan.random_seed, 2])
    vectors = normalised_vectors(rng, len(ids), plan.dimensions).astype(np.float64)
    return [
        {
            model.id_property: item_id,
            "title": f"Tricky {n}",
            "kind": "movie",
            "genres": ["drama"],
            "release_year": 2020,
            model.embedding_property: vectors[n].tolist(),
            model.updated_at_property: BASE_EPOCH_MS,
        }
        for n, item_id in enumerate(ids)
    ]


def bad_media(plan: SeedPlan, model: SourceModel) -> tuple[list[dict[str, Any]], list[BadRecord]]:
    """One node per kind of bad input in MISSION.md, with the reason the copy must give.

    The duplicate needs a partner: a unique constraint cannot hold two equal ids,
    so the duplicate is the integer 424242 beside the valid string "424242"; the
    copy stores ids as strings, where the two collide. The partner is a row but
    not a bad record.
    """
    rng = np.random.default_rng([plan.random_seed, 3])
    dims = plan.dimensions

    def good_vector() -> list[float]:
        return normalised_vectors(rng, 1, dims)[0].astype(np.float64).tolist()

    with_nan = good_vector()
    with_nan[5] = float("nan")
    with_inf = good_vector()
    with_inf[7] = float("inf")
    over_long = "x" * (plan.id_max_length + 1)
    catalogue: list[tuple[Any, Any, str | None, str]] = [
        ("bad-missing-embedding", None, "missing_embedding", "no embedding"),
        ("bad-wrong-dimension", good_vector()[: dims - 1], "wrong_dimension", f"dimension {dims - 1}, expected {dims}"),
        ("bad-empty-embedding", [], "wrong_dimension", f"dimension 0, expected {dims}"),
        ("bad-nan", with_nan, "not_finite", "NaN or Inf in embedding"),
        ("bad-inf", with_inf, "not_finite", "NaN or Inf in embedding"),
        ("bad-non-numeric", ["x"] * dims, "not_numeric", "embedding is not a list of numbers"),
        ("bad-string-embedding", json.dumps(good_vector()[:8]), "not_numeric", "embedding is not a list of numbers"),
        ("", good_vector(), "empty_id", "empty id"),
        (None, good_vector(), "missing_id", "missing id"),
        (over_long, good_vector(), "id_too_long", f"id longer than {plan.id_max_length} bytes"),
        ("424242", good_vector(), None, "valid: the partner of the duplicate below"),
        (
            424242,
            good_vector(),
            "duplicate_id",
            "duplicate id '424242': an integer id equal to another node's string id",
        ),
    ]
    rows: list[dict[str, Any]] = []
    records: list[BadRecord] = []
    for n, (item_id, embedding, kind, reason) in enumerate(catalogue):
        props: dict[str, Any] = {
            "title": f"Bad {kind} {n}" if kind else f"Duplicate partner {n}",
            "kind": "movie",
            "genres": ["drama"],
            "release_year": 2000,
            model.updated_at_property: BASE_EPOCH_MS,
        }
        if item_id is not None:
            props[model.id_property] = item_id
        if embedding is not None:
            props[model.embedding_property] = embedding
        rows.append(props)
        if kind is None:
            continue
        key = "(no id)" if item_id is None else str(item_id)
        if kind == "id_too_long":
            key = f"x * {len(over_long)}"
        records.append(BadRecord("neo4j", key, kind, reason))
    return rows, records


def user_chunks(plan: SeedPlan) -> Iterator[list[dict[str, Any]]]:
    """Users with the media they watched, rating 1-5 and a time."""
    for chunk_index, start in enumerate(range(0, plan.user_count, CHUNK)):
        rng = np.random.default_rng([plan.random_seed, 4, chunk_index])
        count = min(CHUNK, plan.user_count - start)
        rows = []
        for offset in range(count):
            picks = rng.choice(plan.media_count, size=min(plan.watched_per_user, plan.media_count), replace=False)
            ratings = rng.integers(1, 6, len(picks))
            rows.append(
                {
                    "id": f"user-{start + offset:06d}",
                    "watched": [
                        {"media": media_id(int(m)), "rating": int(r), "at": BASE_EPOCH_MS + int(m) * 7}
                        for m, r in zip(picks, ratings, strict=False)
                    ],
                }
            )
        yield rows


def similar_chunks(plan: SeedPlan) -> Iterator[list[dict[str, Any]]]:
    """SIMILAR_TO edges from each media to a few others, with a score."""
    for chunk_index, start in enumerate(range(0, plan.media_count, CHUNK)):
        rng = np.random.default_rng([plan.random_seed, 5, chunk_index])
        count = min(CHUNK, plan.media_count - start)
        targets = rng.integers(0, plan.media_count, (count, plan.similar_per_media))
        scores = rng.uniform(0.5, 1.0, (count, plan.similar_per_media))
        rows = [
            {"a": media_id(start + offset), "b": media_id(int(t)), "score": round(float(s), 4)}
            for offset in range(count)
            for t, s in zip(targets[offset], scores[offset], strict=False)
            if int(t) != start + offset
        ]
        yield rows


class Neo4jSeeder:
    """Writes the graph with batched UNWIND statements."""

    def __init__(self, driver: "neo4j.Driver", database: str, model: SourceModel, plan: SeedPlan) -> None:
        self.driver = driver
        self.database = database
        self.model = model
        self.plan = plan
        self.label = quote_identifier(model.label)
        self.id_property = quote_identifier(model.id_property)

    def _run(self, query: str, **parameters: Any) -> list[dict[str, Any]]:
        records, _, _ = self.driver.execute_query(query, parameters, database_=self.database)
        return [dict(record.items()) for record in records]

    def state(self) -> tuple[int, str | None]:
        """Count of all nodes and the fingerprint of the seed that made them, if any."""
        total = self._run("MATCH (n) RETURN count(n) AS n")[0]["n"]
        marker = self._run(f"MATCH (s:{SEED_MARKER_LABEL}) RETURN s.fingerprint AS f LIMIT 1")
        return total, (marker[0]["f"] if marker else None)

    def reset(self) -> None:
        """Delete every node, then the seeder's indexes and constraints."""
        with self.driver.session(database=self.database) as session:
            session.run("MATCH (n) CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 5000 ROWS").consume()
        self._run(f"DROP INDEX {quote_identifier(self.model.vector_index)} IF EXISTS")
        for name in ("media_id_unique", "genre_name_unique", "user_id_unique"):
            self._run(f"DROP CONSTRAINT {name} IF EXISTS")

    def seed(self, fingerprint: str) -> dict[str, Any]:
        """Create the whole graph; the caller made sure the database is empty."""
        label, idp = self.label, self.id_property
        self._run(f"CREATE CONSTRAINT media_id_unique IF NOT EXISTS FOR (m:{label}) REQUIRE m.{idp} IS UNIQUE")
        self._run("CREATE CONSTRAINT genre_name_unique IF NOT EXISTS FOR (g:Genre) REQUIRE g.name IS UNIQUE")
        self._run("CREATE CONSTRAINT user_id_unique IF NOT EXISTS FOR (u:User) REQUIRE u.id IS UNIQUE")
        self._run("UNWIND $names AS name MERGE (:Genre {name: name})", names=GENRES)
        counts = {
            "media": 0,
            "users": 0,
            "watched": 0,
            "in_genre": 0,
            "similar_to": 0,
            "bad_media": 0,
            "tricky_media": 0,
        }
        create_media = (
            f"UNWIND $rows AS row CREATE (m:{label}) SET m = row.props "
            "WITH m, row UNWIND row.genres AS name MATCH (g:Genre {name: name}) "
            "CREATE (m)-[:IN_GENRE]->(g) RETURN count(*) AS edges"
        )
        for rows in media_chunks(self.plan, self.model):
            counts["in_genre"] += self._run(create_media, rows=rows)[0]["edges"]
            counts["media"] += len(rows)
        create_users = (
            "UNWIND $rows AS row CREATE (u:User {id: row.id}) WITH u, row UNWIND row.watched AS w "
            f"MATCH (m:{label} {{{idp}: w.media}}) "
            "CREATE (u)-[:WATCHED {at: w.at, rating: w.rating}]->(m) RETURN count(*) AS edges"
        )
        for rows in user_chunks(self.plan):
            counts["watched"] += self._run(create_users, rows=rows)[0]["edges"]
            counts["users"] += len(rows)
        create_similar = (
            f"UNWIND $rows AS r MATCH (a:{label} {{{idp}: r.a}}) MATCH (b:{label} {{{idp}: r.b}}) "
            "CREATE (a)-[:SIMILAR_TO {score: r.score}]->(b) RETURN count(*) AS edges"
        )
        for rows in similar_chunks(self.plan):
            counts["similar_to"] += self._run(create_similar, rows=rows)[0]["edges"]
        tricky = tricky_media(self.plan, self.model)
        self._run(f"UNWIND $rows AS props CREATE (m:{label}) SET m = props", rows=tricky)
        counts["tricky_media"] = len(tricky)
        if self.plan.bad_records:
            rows, _ = bad_media(self.plan, self.model)
            self._run(f"UNWIND $rows AS props CREATE (m:{label}) SET m = props", rows=rows)
            counts["bad_media"] = len(rows)
        self._run(
            f"CREATE VECTOR INDEX {quote_identifier(self.model.vector_index)} IF NOT EXISTS "
            f"FOR (m:{label}) ON m.{quote_identifier(self.model.embedding_property)} "
            # Quantization off: on Java 17 Lucene has no SIMD, and the int8 path costs a third more per search.
            "OPTIONS {indexConfig: {`vector.dimensions`: $dims, `vector.similarity_function`: $function, "
            "`vector.quantization.enabled`: false}}",
            dims=self.plan.dimensions,
            function=self.plan.similarity_function,
        )
        self._run("CALL db.awaitIndexes(600)")
        self._run(
            f"CREATE (:{SEED_MARKER_LABEL} {{fingerprint: $fingerprint, seeded_at: timestamp()}})",
            fingerprint=fingerprint,
        )
        return counts


def agent_id(index: int) -> str:
    return f"agent-{index:04d}"


class RedisSeeder:
    """Writes the AgentDB layout with pipelined commands."""

    def __init__(self, client: "redis_lib.Redis", prefix: str, plan: SeedPlan) -> None:
        self.client = client
        self.prefix = prefix
        self.plan = plan

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def state(self) -> tuple[int, str | None]:
        """Count of keys under the prefix and the fingerprint of the seed that made them."""
        count = sum(1 for _ in self.client.scan_iter(match=self.prefix + "*", count=1000))
        marker = self.client.get(REDIS_SEED_MARKER)
        return count, (marker.decode() if marker else None)

    def reset(self) -> int:
        """Delete every key under the prefix (SCAN, never KEYS) and the seed marker."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += self.client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += self.client.unlink(*batch)
        self.client.delete(REDIS_SEED_MARKER)
        return deleted

    def seed(self, fingerprint: str) -> dict[str, Any]:
        counts = {"agents": 0, "qvalues": 0, "policies": 0, "experiences": 0, "bad_records": 0}
        pipe = self.client.pipeline(transaction=False)
        for index in range(self.plan.agent_count):
            self._agent(pipe, index, counts)
            if len(pipe) >= 5000:
                pipe.execute()
        if self.plan.bad_records:
            counts["bad_records"] = len(self._bad_records(pipe))
        pipe.set(REDIS_SEED_MARKER, fingerprint)
        pipe.execute()
        return counts

    def _agent(self, pipe: Any, index: int, counts: dict[str, int]) -> None:
        rng = np.random.default_rng([self.plan.random_seed, 6, index])
        ident = agent_id(index)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_EPOCH_MS / 1000 + index * 3600))
        config = {
            "learning_rate": round(float(rng.uniform(1e-4, 1e-2)), 6),
            "gamma": round(float(rng.uniform(0.9, 0.999)), 4),
            "layers": [int(x) for x in rng.choice([64, 128, 256], 3)],
        }
        pipe.sadd(self.key("agents"), ident)
        pipe.hset(
            self.key("agent", ident),
            mapping={
                "name": f"Recommender agent {index}",
                "kind": AGENT_KINDS[index % len(AGENT_KINDS)],
                "version": f"1.{index % 5}.0",
                "created_at": created,
                "config": json.dumps(config),
            },
        )
        qvalues = {
            f"s{state}|{action}": repr(round(float(value), 6))
            for state, action, value in zip(
                rng.integers(0, 1000, self.plan.qvalues_per_agent),
                rng.choice(ACTIONS, self.plan.qvalues_per_agent),
                rng.normal(0.0, 1.0, self.plan.qvalues_per_agent),
                strict=False,
            )
        }
        if qvalues:
            pipe.hset(self.key("agent", ident, "qvalues"), mapping=qvalues)
        counts["qvalues"] += len(qvalues)
        policy = {
            "version": index % 7 + 1,
            "epsilon": round(float(rng.uniform(0.01, 0.3)), 4),
            "temperature": round(float(rng.uniform(0.5, 2.0)), 4),
            "weights": [round(float(w), 5) for w in rng.normal(0, 1, 16)],
            "updated_at": BASE_EPOCH_MS + index * 60_000,
        }
        pipe.set(self.key("agent", ident, "policy"), json.dumps(policy))
        counts["policies"] += 1
        stream = self.key("agent", ident, "experiences")
        rewards = rng.normal(0.0, 1.0, self.plan.experiences_per_agent)
        states = rng.integers(0, 1000, self.plan.experiences_per_agent + 1)
        actions = rng.choice(ACTIONS, self.plan.experiences_per_agent)
        for step in range(self.plan.experiences_per_agent):
            ts = BASE_EPOCH_MS + index * 10_000_000 + step * 1000
            pipe.xadd(
                stream,
                {
                    "state": json.dumps({"s": int(states[step]), "step": step}),
                    "action": str(actions[step]),
                    "reward": repr(round(float(rewards[step]), 6)),
                    "next_state": json.dumps({"s": int(states[step + 1]), "step": step + 1}),
                    "done": "1" if step == self.plan.experiences_per_agent - 1 else "0",
                    "ts": str(ts),
                },
                id=f"{ts}-0",
            )
        counts["experiences"] += self.plan.experiences_per_agent
        counts["agents"] += 1

    def _bad_records(self, pipe: Any) -> list[BadRecord]:
        records = []
        for record, operations in redis_bad_records(self.prefix):
            for method, args, kwargs in operations:
                getattr(pipe, method)(*args, **kwargs)
            records.append(record)
        return records


Operation = tuple[str, tuple[Any, ...], dict[str, Any]]


def redis_bad_records(prefix: str) -> list[tuple[BadRecord, list[Operation]]]:
    """Broken AgentDB records, each with the Redis commands that write it.

    Kept as data so the catalogue can be listed without a server.
    """
    entries: list[tuple[BadRecord, list[Operation]]] = []

    def add(key: str, kind: str, reason: str, *operations: Operation) -> None:
        entries.append((BadRecord("redis", key, kind, reason), list(operations)))

    def hset(key: str, mapping: dict[str, str]) -> Operation:
        return ("hset", (key,), {"mapping": mapping})

    def agent_hash(name: str, **overrides: str) -> dict[str, str]:
        fields_ = {"name": name, "kind": "dqn", "version": "1", "created_at": "2025-01-01T00:00:00Z", "config": "{}"}
        fields_.update(overrides)
        return {k: v for k, v in fields_.items() if v != ""}

    agents = prefix + "agents"
    good = prefix + "agent:" + agent_id(0)
    add(
        f"{good}:qvalues bad-state|play",
        "qvalue_not_numeric",
        "q-value is not a number",
        hset(f"{good}:qvalues", {"bad-state|play": "not-a-number"}),
    )
    add(
        f"{good}:qvalues no-separator",
        "qvalue_bad_field",
        "q-value field is not state|action",
        hset(f"{good}:qvalues", {"no-separator": "0.5"}),
    )
    complete = {"state": "{}", "action": "play", "reward": "0.1", "next_state": "{}", "done": "0", "ts": "1"}
    bad_entries = [
        ({"state": "{not json"}, "experience_bad_json", "state is not valid JSON"),
        ({"reward": "lots"}, "experience_reward_not_numeric", "reward is not a number"),
        ({"action": None}, "experience_missing_field", "missing field action"),
        ({"done": "maybe"}, "experience_bad_done", "done is not 0 or 1"),
    ]
    for offset, (changes, kind, reason) in enumerate(bad_entries):
        entry = {k: v for k, v in {**complete, **changes}.items() if v is not None}
        entry_id = f"{BASE_EPOCH_MS + 10**12 + offset}-0"
        add(f"{good}:experiences {entry_id}", kind, reason, ("xadd", (f"{good}:experiences", entry), {"id": entry_id}))
    bad = prefix + "agent:agent-bad-"
    # suffix, kind, reason, the agent's hash (None: no hash at all), an extra string key (suffix, value)
    bad_agents: list[tuple[str, str, str, dict[str, str] | None, tuple[str, str] | None]] = [
        (
            "policy-json",
            "policy_bad_json",
            "policy is not valid JSON",
            agent_hash("bad policy"),
            (":policy", '{"epsilon": 0.1,'),
        ),
        ("config-json", "agent_bad_json", "config is not valid JSON", agent_hash("bad config", config="{oops"), None),
        (
            "missing-fields",
            "agent_missing_field",
            "missing field name",
            agent_hash("", version="", created_at="", config=""),
            None,
        ),
        (
            "bad-created-at",
            "agent_bad_timestamp",
            "created_at is not ISO 8601",
            agent_hash("bad date", created_at="yesterday"),
            None,
        ),
        (
            "wrong-type",
            "wrong_type",
            "key is a string, expected a hash",
            agent_hash("wrong type"),
            (":qvalues", "this should be a hash"),
        ),
        ("dangling", "agent_missing", "agent listed in the agents set has no hash", None, None),
    ]
    for suffix, kind, reason, agent_fields, extra in bad_agents:
        operations: list[Operation] = [("sadd", (agents, f"agent-bad-{suffix}"), {})]
        if agent_fields is not None:
            operations.append(hset(f"{bad}{suffix}", agent_fields))
        if extra is not None:
            operations.append(("set", (f"{bad}{suffix}{extra[0]}", extra[1]), {}))
        add(f"{bad}{suffix}{extra[0] if extra else ''}", kind, reason, *operations)
    return entries  # fmt: skip


def bad_record_catalogue(plan: SeedPlan, model: SourceModel, key_prefix: str) -> list[BadRecord]:
    """Every bad record the seeder writes, without writing anything."""
    if not plan.bad_records:
        return []
    _, records = bad_media(plan, model)
    return records + [record for record, _ in redis_bad_records(key_prefix)]


def seed_sandbox(
    driver: "neo4j.Driver",
    database: str,
    redis_client: "redis_lib.Redis",
    key_prefix: str,
    model: SourceModel,
    plan: SeedPlan,
    reset: bool,
    check_mode: bool,
    replace_other_data: bool = False,
) -> SeedResult:
    """Fill both stores unless they already hold exactly this seed.

    Args:
        reset: empty both stores first, even if they hold this very seed.
        replace_other_data: empty a store that holds anything but this seed
            instead of refusing; a store holding this seed is left alone.

    Raises:
        TerminalError: a store holds other data and neither flag allows replacing it.
    """
    started = time.monotonic()
    fingerprint = plan.fingerprint(model, key_prefix)
    result = SeedResult(fingerprint=fingerprint)
    result.bad_records = [asdict(r) for r in bad_record_catalogue(plan, model, key_prefix)]
    result.tricky_ids = [row[model.id_property] for row in tricky_media(plan, model)]
    graph = Neo4jSeeder(driver, database, model, plan)
    agents = RedisSeeder(redis_client, key_prefix, plan)
    stores = [("neo4j", graph, result.neo4j), ("redis", agents, result.redis)]
    for name, seeder, report in stores:
        existing, marker = seeder.state()
        report["existing_items"] = existing
        if marker == fingerprint and not reset:
            report["action"] = "none"
            continue
        if existing and not (reset or replace_other_data):
            what = f"data from another seed ({marker})" if marker else "data the seeder did not write"
            raise TerminalError(
                f"{name} already holds {existing} items of {what}; "
                "run with seed_reset=true (or seed_replace_other_data=true) to empty the sandbox first"
            )
        report["action"] = "reset and seed" if existing else "seed"
        result.changed = True
        if check_mode:
            continue
        if existing:
            seeder.reset()
        report.update(seeder.seed(fingerprint))
    result.seconds = round(time.monotonic() - started, 2)
    return result
