"""Preflight: is every server there, is the data what we expect, is there room?

Each check is independent and ends as passed, warning, failed or skipped with
one readable sentence and a dictionary of facts, so the operator sees every
problem of a run at once instead of the first one only. Nothing is written.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from .connections import open_milvus, open_neo4j, open_postgres, open_redis
from .errors import MigrationError
from .formatting import human_bytes, human_duration
from .milvus_collection import NEO4J_TO_MILVUS_METRIC
from .neo4j_source import vector_index_info
from .settings import (
    MilvusSettings,
    Neo4jSettings,
    PostgresSettings,
    RedisSettings,
    SourceModel,
    quote_identifier,
)

if TYPE_CHECKING:
    import neo4j

PASSED, WARNING, FAILED, SKIPPED = "passed", "warning", "failed", "skipped"
# Python holds a float of a Neo4j list as a 24-byte object plus an 8-byte pointer;
# with numpy's copy and the gRPC message, a batch costs about this much per value.
BYTES_PER_VALUE_IN_FLIGHT = 48
BASE_PROCESS_BYTES = 200 * 1024 * 1024


@dataclass
class Check:
    """The outcome of one preflight check."""

    name: str
    status: str
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreflightOptions:
    """What the checks compare against."""

    check_connectivity: bool = True
    sample_size: int = 1000
    disk_paths: tuple[str, ...] = ()
    disk_factor: float = 3.0
    min_memory_bytes: int = 512 * 1024 * 1024
    max_mixed_dimension_ratio: float = 0.001
    dimension: int | None = None
    metric: str | None = None
    min_neo4j_version: str = "5.13"
    batch_size: int = 1000
    concurrency: int = 4
    milvus_collection: str = "media_embeddings"


@dataclass
class PreflightReport:
    """Every check, the facts gathered, and whether the run may go on."""

    checks: list[Check]
    facts: dict[str, Any]

    @property
    def passed(self) -> bool:
        return all(check.status != FAILED for check in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{check.name}: {check.summary}" for check in self.checks if check.status == FAILED]

    def summary_lines(self) -> list[str]:
        """A table an operator reads at a glance."""
        counts = {
            status: sum(1 for c in self.checks if c.status == status) for status in (PASSED, WARNING, FAILED, SKIPPED)
        }
        head = "PREFLIGHT {} - {}".format(
            "PASSED" if self.passed else "FAILED",
            ", ".join(f"{n} {status}" for status, n in counts.items() if n),
        )
        marks = {PASSED: "ok", WARNING: "warn", FAILED: "FAIL", SKIPPED: "skip"}
        return [head] + [f"[{marks[c.status]:>4}] {c.name:<14} {c.summary}" for c in self.checks]

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [asdict(check) for check in self.checks],
            "facts": self.facts,
            "failures": self.failures,
            "summary": self.summary_lines(),
        }


def version_tuple(version: str) -> tuple[int, ...]:
    """``'5.26.19'`` -> ``(5, 26, 19)``; text after the numbers is ignored."""
    parts = []
    for piece in version.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def describe_dimensions(dimensions: dict[int, int]) -> str:
    """``{768: 20000, 767: 1}`` -> ``'768-d (20000), 767-d (1)'``, most common first."""
    ordered = sorted(dimensions.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{dim}-d ({count})" for dim, count in ordered)


def judge_dimensions(
    dimensions: dict[int, int], expected: int | None, max_mixed_ratio: float
) -> tuple[str, str, int | None]:
    """Decide whether the embeddings' dimensions are consistent enough to migrate.

    A few odd vectors are bad records the copy rejects one by one; a large
    share means the data or the configured dimension is wrong.

    Returns:
        (status, sentence, dimension the migration will use)
    """
    total = sum(dimensions.values())
    if total == 0:
        return FAILED, "no numeric embeddings to measure", expected
    dominant = expected if expected is not None else max(dimensions, key=lambda d: (dimensions[d], d))
    odd = total - dimensions.get(dominant, 0)
    share = odd / total
    described = describe_dimensions(dimensions)
    if odd == 0:
        return PASSED, f"all {total} embeddings are {dominant}-d", dominant
    sentence = f"mixed embedding dimensions: {described}; {odd} of {total} ({share:.2%}) are not {dominant}-d"
    if share > max_mixed_ratio:
        return FAILED, f"{sentence}, above the {max_mixed_ratio:.2%} allowed (max_mixed_dimension_ratio)", dominant
    return WARNING, f"{sentence}; the copy will reject them", dominant


class Preflight:
    """Runs the checks in order; later checks use the facts of earlier ones."""

    def __init__(
        self,
        neo4j_settings: Neo4jSettings,
        milvus_settings: MilvusSettings,
        postgres_settings: PostgresSettings,
        redis_settings: RedisSettings,
        model: SourceModel,
        options: PreflightOptions,
    ) -> None:
        self.neo4j_settings = neo4j_settings
        self.milvus_settings = milvus_settings
        self.postgres_settings = postgres_settings
        self.redis_settings = redis_settings
        self.model = model
        self.options = options
        self.facts: dict[str, Any] = {}
        self.driver: "neo4j.Driver | None" = None

    def run(self) -> PreflightReport:
        checks: list[Check] = []
        steps: list[tuple[str, Callable[[], Check], bool]] = [
            ("neo4j", self.check_neo4j, True),
            ("embeddings", self.check_embeddings, True),
            ("vector_index", self.check_vector_index, True),
            ("milvus", self.check_milvus, True),
            ("postgres", self.check_postgres, True),
            ("redis", self.check_redis, True),
            ("disk", self.check_disk, False),
            ("memory", self.check_memory, False),
            ("copy_estimate", self.check_copy_estimate, True),
        ]
        try:
            for name, step, needs_servers in steps:
                if needs_servers and not self.options.check_connectivity:
                    checks.append(Check(name, SKIPPED, "server checks off (check_connectivity=false)"))
                    continue
                try:
                    checks.append(step())
                except MigrationError as error:
                    checks.append(Check(name, FAILED, str(error)))
                except Exception as error:  # one broken check must not hide the others
                    checks.append(Check(name, FAILED, f"unexpected {type(error).__name__}: {error}"))
        finally:
            if self.driver is not None:
                self.driver.close()
        return PreflightReport(checks=checks, facts=self.facts)

    def _neo4j_query(self, query: str, **parameters: Any) -> list[dict[str, Any]]:
        if self.driver is None:
            raise MigrationError("needs a Neo4j connection, which failed")
        records, _, _ = self.driver.execute_query(
            query, parameters, database_=self.neo4j_settings.database, routing_="r"
        )
        return [dict(record.items()) for record in records]

    def check_neo4j(self) -> Check:
        self.driver = open_neo4j(self.neo4j_settings)
        row = self._neo4j_query(
            "CALL dbms.components() YIELD name, versions, edition RETURN versions[0] AS version, edition"
        )[0]
        self.facts.update(neo4j_version=row["version"], neo4j_edition=row["edition"])
        where = f"Neo4j {row['version']} {row['edition']} at {self.neo4j_settings.uri}"
        if version_tuple(row["version"]) < version_tuple(self.options.min_neo4j_version):
            return Check(
                "neo4j",
                FAILED,
                f"{where} is older than {self.options.min_neo4j_version}, the first with vector indexes",
                {"version": row["version"]},
            )
        return Check("neo4j", PASSED, where, {"version": row["version"], "edition": row["edition"]})

    def check_embeddings(self) -> Check:
        label = quote_identifier(self.model.label)
        prop = quote_identifier(self.model.embedding_property)
        rows = self._neo4j_query(
            f"MATCH (m:{label}) WITH m.{prop} AS e "
            "RETURN CASE WHEN e IS NULL THEN 'missing' "
            "WHEN e IS :: LIST<FLOAT NOT NULL> | LIST<INTEGER NOT NULL> THEN 'numeric' ELSE 'not_numeric' END AS kind, "
            "CASE WHEN e IS :: LIST<ANY> THEN size(e) END AS dimension, count(*) AS nodes"
        )
        total = sum(row["nodes"] for row in rows)
        missing = sum(row["nodes"] for row in rows if row["kind"] == "missing")
        not_numeric = sum(row["nodes"] for row in rows if row["kind"] == "not_numeric")
        dimensions = {row["dimension"]: row["nodes"] for row in rows if row["kind"] == "numeric"}
        numeric = sum(dimensions.values())
        where = f"label :{self.model.label}, property {self.model.embedding_property}"
        facts: dict[str, Any] = {
            "nodes": total,
            "with_embedding": numeric,
            "missing_embedding": missing,
            "not_numeric": not_numeric,
            "dimensions": {str(dim): count for dim, count in dimensions.items()},
        }
        self.facts.update(
            label_nodes=total,
            embedding_count=numeric,
            missing_embedding=missing,
            not_numeric_embedding=not_numeric,
            dimensions=facts["dimensions"],
        )
        if total == 0:
            return Check("embeddings", FAILED, f"no nodes with {where.split(',')[0]}", facts)
        if numeric == 0:
            return Check(
                "embeddings", FAILED, f"no embeddings under {where} ({total} nodes, none with a numeric list)", facts
            )
        status, sentence, dimension = judge_dimensions(
            dimensions, self.options.dimension, self.options.max_mixed_dimension_ratio
        )
        self.facts["dimension"] = dimension
        self.facts["embedding_bytes"] = dimensions.get(dimension, 0) * (dimension or 0) * 4
        facts["dimension"] = dimension
        head = f"{numeric} of {total} nodes have an embedding ({missing} without, {not_numeric} not numeric)"
        if status == PASSED and (missing or not_numeric):
            status = WARNING
            sentence += "; nodes without a numeric embedding will be rejected with their reason"
        return Check("embeddings", status, f"{head}; {sentence}", facts)

    def check_vector_index(self) -> Check:
        if self.driver is None:
            raise MigrationError("needs a Neo4j connection, which failed")
        index = vector_index_info(self.driver, self.neo4j_settings.database, self.model.vector_index)
        explicit = self.options.metric
        if index is None:
            sentence = f"no vector index named {self.model.vector_index!r}"
            if explicit:
                self.facts["metric"] = explicit
                return Check("vector_index", WARNING, f"{sentence}; using the configured metric {explicit}")
            return Check(
                "vector_index",
                FAILED,
                f"{sentence}: the Milvus metric cannot be derived; create the index or set the metric explicitly",
            )
        function, dimension = index["similarity_function"], index["dimension"]
        metric = NEO4J_TO_MILVUS_METRIC.get(function)
        facts = {**index, "metric": explicit or metric}
        self.facts.update(vector_index=facts, metric=explicit or metric)
        if facts["label"] != self.model.label or facts["property"] != self.model.embedding_property:
            return Check(
                "vector_index",
                FAILED,
                f"index {index['name']!r} covers :{facts['label']}({facts['property']}), "
                f"not :{self.model.label}({self.model.embedding_property})",
                facts,
            )
        if metric is None and not explicit:
            return Check(
                "vector_index", FAILED, f"unknown similarity function {function!r} and no explicit metric", facts
            )
        known = self.facts.get("dimension")
        if dimension is not None and known is not None and int(dimension) != int(known):
            return Check(
                "vector_index",
                FAILED,
                f"index {index['name']!r} is {dimension}-d but the embeddings are {known}-d",
                facts,
            )
        status = PASSED if index["state"] == "ONLINE" else WARNING
        return Check(
            "vector_index",
            status,
            f"{index['name']} ({function}, {dimension}-d, {index['state']}) -> Milvus metric {explicit or metric}",
            facts,
        )

    def check_milvus(self) -> Check:
        client = open_milvus(self.milvus_settings)
        try:
            version = client.get_server_version()
            collections = client.list_collections()
            facts: dict[str, Any] = {"version": version, "collections": len(collections)}
            target = self.options.milvus_collection
            facts["collection_exists"] = target in collections
            if target in collections:
                facts["collection_rows"] = int(client.get_collection_stats(target).get("row_count", 0))
        finally:
            client.close()
        self.facts.update(milvus_version=version, milvus_collection=facts)
        state = (
            f"collection {target} exists ({facts['collection_rows']} rows)"
            if facts["collection_exists"]
            else f"collection {target} not created yet"
        )
        return Check("milvus", PASSED, f"Milvus {version} at {self.milvus_settings.uri}; {state}", facts)

    def check_postgres(self) -> Check:
        with open_postgres(self.postgres_settings) as connection:
            version = connection.execute("SHOW server_version").fetchone()[0]
            can_create = connection.execute(
                "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
            ).fetchone()[0]
        self.facts["postgres_version"] = version
        where = f"PostgreSQL {version} at {self.postgres_settings.host}:{self.postgres_settings.port}"
        facts = {"version": version, "can_create_schema": bool(can_create)}
        if not can_create:
            return Check(
                "postgres",
                FAILED,
                f"{where}: role {self.postgres_settings.user!r} cannot create schemas in "
                f"database {self.postgres_settings.database!r} (GRANT CREATE ON DATABASE ...)",
                facts,
            )
        return Check("postgres", PASSED, f"{where}, database {self.postgres_settings.database}", facts)

    def check_redis(self) -> Check:
        client = open_redis(self.redis_settings)
        try:
            info = client.info("server")
            memory = client.info("memory")
            agents_key = self.redis_settings.key_prefix + "agents"
            key_type = client.type(agents_key).decode()
            agents = client.scard(agents_key) if key_type == "set" else 0
        finally:
            client.close()
        version = info.get("redis_version", "?")
        self.facts.update(redis_version=version, agent_count=agents)
        facts = {"version": version, "agents": agents, "used_memory": memory.get("used_memory")}
        where = f"Redis {version} at {self.redis_settings.host}:{self.redis_settings.port}"
        if key_type not in ("set", "none"):
            return Check("redis", FAILED, f"{where}: {agents_key} is a {key_type}, expected a set", facts)
        if agents == 0:
            return Check(
                "redis", WARNING, f"{where}: no agents under {agents_key}; the AgentDB phase has nothing to copy", facts
            )
        return Check("redis", PASSED, f"{where}: {agents} agents under {agents_key}", facts)

    def check_disk(self) -> Check:
        needed = int(self.options.disk_factor * self.facts.get("embedding_bytes", 0))
        facts: dict[str, Any] = {"required_bytes": needed, "paths": {}}
        short = []
        for raw in self.options.disk_paths:
            path = Path(raw)
            while not path.exists() and path != path.parent:
                path = path.parent
            free = shutil.disk_usage(path).free
            facts["paths"][raw] = free
            if free < needed:
                short.append(f"{raw} has {human_bytes(free)} free")
        self.facts["disk"] = facts
        if not self.options.disk_paths:
            return Check("disk", SKIPPED, "no disk_paths configured", facts)
        basis = (
            f"{self.options.disk_factor:g}x the embedding bytes is {human_bytes(needed)}"
            if "embedding_bytes" in self.facts
            else "embedding bytes unknown (no Neo4j facts)"
        )
        if short:
            return Check("disk", FAILED, f"too little disk: {'; '.join(short)}; {basis}", facts)
        free_text = ", ".join(f"{p}: {human_bytes(f)} free" for p, f in facts["paths"].items())
        return Check("disk", PASSED, f"{free_text}; {basis}", facts)

    def check_memory(self) -> Check:
        available = psutil.virtual_memory().available
        dimension = self.facts.get("dimension") or self.options.dimension or 768
        in_flight = self.options.batch_size * dimension * BYTES_PER_VALUE_IN_FLIGHT * (self.options.concurrency + 1)
        needed = max(self.options.min_memory_bytes, BASE_PROCESS_BYTES + in_flight)
        facts = {"available_bytes": available, "required_bytes": needed}
        self.facts["memory"] = facts
        basis = (
            f"the copy needs about {human_bytes(needed)} at batch_size {self.options.batch_size}, "
            f"concurrency {self.options.concurrency}"
        )
        if available < needed:
            return Check("memory", FAILED, f"only {human_bytes(available)} available; {basis}", facts)
        return Check("memory", PASSED, f"{human_bytes(available)} available; {basis}", facts)

    def check_copy_estimate(self) -> Check:
        label = quote_identifier(self.model.label)
        idp = quote_identifier(self.model.id_property)
        prop = quote_identifier(self.model.embedding_property)
        query = (
            f"MATCH (m:{label}) WHERE m.{idp} IS NOT NULL AND m.{prop} IS NOT NULL "
            f"RETURN m.{idp} AS id, m.{prop} AS embedding ORDER BY m.{idp} LIMIT $limit"
        )
        self._neo4j_query(query, limit=1)  # plan and warm up, so the sample measures reading alone
        started = time.perf_counter()
        rows = self._neo4j_query(query, limit=self.options.sample_size)
        seconds = max(time.perf_counter() - started, 1e-6)
        if not rows:
            return Check("copy_estimate", SKIPPED, "no embeddings to sample")
        rate = len(rows) / seconds
        total = self.facts.get("embedding_count", len(rows))
        estimate = total / rate
        facts = {
            "sample_items": len(rows),
            "sample_seconds": round(seconds, 4),
            "read_rate_items_per_second": round(rate, 1),
            "estimated_copy_seconds": round(estimate, 1),
        }
        self.facts["copy_estimate"] = facts
        return Check(
            "copy_estimate",
            PASSED,
            f"read {len(rows)} embeddings in {seconds:.2f}s ({rate:,.0f}/s); "
            f"{total} embeddings need about {human_duration(estimate)} to read",
            facts,
        )
