"""The engine's two stores: Neo4j (source of truth, graph and metadata) and Milvus (vectors)."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from hybrid_migration.settings import MilvusSettings, Neo4jSettings, SourceModel, quote_identifier


@dataclass(frozen=True)
class Hit:
    """One search result."""

    id: str
    score: float


class Neo4jStore:
    """Writes embeddings, answers vector searches through the vector index, and hydrates results."""

    def __init__(self, settings: Neo4jSettings, model: SourceModel) -> None:
        import neo4j

        self.settings = settings
        self.model = model
        self.driver = neo4j.GraphDatabase.driver(
            settings.uri,
            auth=(settings.user, settings.password),
            connection_timeout=settings.connect_timeout,
            max_transaction_retry_time=5.0,
            notifications_min_severity="OFF",
        )
        label = quote_identifier(model.label)
        key = quote_identifier(model.id_property)
        embedding = quote_identifier(model.embedding_property)
        stamp = quote_identifier(model.updated_at_property)
        self._write = f"MERGE (m:{label} {{{key}: $id}}) SET m.{embedding} = $embedding, m.{stamp} = $updated_at"
        self._write_many = (
            f"UNWIND $rows AS row MERGE (m:{label} {{{key}: row.id}}) "
            f"SET m.{embedding} = row.embedding, m.{stamp} = row.updated_at"
        )
        self._vector = f"MATCH (m:{label} {{{key}: $id}}) RETURN m.{embedding} AS embedding"
        self._vectors = (
            f"UNWIND $ids AS wanted MATCH (m:{label} {{{key}: wanted}}) "
            f"RETURN m.{key} AS id, m.{embedding} AS embedding, m.{stamp} AS updated_at"
        )
        self._search = (
            "CALL db.index.vector.queryNodes($index, $candidates, $vector) YIELD node, score "
            f"RETURN node.{key} AS id, score"
        )
        self._similar = (
            f"MATCH (m:{label} {{{key}: $id}}) WHERE m.{embedding} IS NOT NULL "
            "CALL { WITH m "
            f"CALL db.index.vector.queryNodes($index, $limit, m.{embedding}) YIELD node, score "
            f"RETURN collect([node.{key}, score]) AS hits }} "
            f"RETURN hits, CASE WHEN $with_vector THEN m.{embedding} ELSE null END AS query"
        )
        self._hydrate = (
            f"UNWIND $ids AS wanted MATCH (m:{label} {{{key}: wanted}}) "
            f"RETURN m.{key} AS id, m.title AS title, m.kind AS kind, m.release_year AS release_year"
        )

    def close(self) -> None:
        self.driver.close()

    def _query(self, query: str, **parameters: Any) -> list[Any]:
        records, _, _ = self.driver.execute_query(query, parameters, database_=self.settings.database)
        return records

    def ping(self) -> None:
        self.driver.verify_connectivity()

    def write(self, item_id: str, embedding: list[float], updated_at: int) -> None:
        import neo4j

        self.driver.execute_query(
            self._write,
            {"id": item_id, "embedding": embedding, "updated_at": updated_at},
            database_=self.settings.database,
            routing_=neo4j.RoutingControl.WRITE,
        )

    def write_many(self, rows: list[tuple[str, list[float], int]]) -> None:
        """Write several embeddings in one transaction (group commit); in order, so the last write of an id wins."""
        import neo4j

        self.driver.execute_query(
            self._write_many,
            {"rows": [{"id": i, "embedding": e, "updated_at": u} for i, e, u in rows]},
            database_=self.settings.database,
            routing_=neo4j.RoutingControl.WRITE,
        )

    def vector(self, item_id: str) -> list[float] | None:
        records = self._query(self._vector, id=item_id)
        if not records:
            return None
        value = records[0]["embedding"]
        return value if isinstance(value, list) else None

    def current(self, ids: list[str]) -> list[tuple[str, list[float], int]]:
        """Current (id, embedding, updated_at) of ``ids``, for repairs."""
        return [
            (record["id"], record["embedding"], int(record["updated_at"] or 0))
            for record in self._query(self._vectors, ids=ids)
            if isinstance(record["embedding"], list)
        ]

    def search(self, vector: list[float], limit: int) -> list[Hit]:
        """Nearest ``limit`` ids to a vector (hybrid mode's fallback when Milvus fails)."""
        records = self._query(self._search, index=self.model.vector_index, candidates=limit, vector=vector)
        return [Hit(str(record["id"]), float(record["score"])) for record in records]

    def similar(self, item_id: str, limit: int, with_vector: bool) -> tuple[list[Hit], list[float] | None] | None:
        """Neighbours of a stored item in one round trip (and its vector when asked); None if it has none."""
        records = self._query(
            self._similar, id=item_id, index=self.model.vector_index, limit=limit, with_vector=with_vector
        )
        if not records:
            return None
        hits = [Hit(str(hit_id), float(score)) for hit_id, score in records[0]["hits"]]
        return hits, records[0]["query"]

    def hydrate(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {str(record["id"]): dict(record.items()) for record in self._query(self._hydrate, ids=ids)}


class MilvusStore:
    """Upserts and searches one collection; connects lazily, so the engine starts before Milvus exists.

    One client serves every thread and is never replaced: gRPC reconnects by itself after Milvus
    restarts, and closing a shared client under other threads' calls fails them all.
    """

    def __init__(self, settings: MilvusSettings, collection: str, search_ef: int, timeout: float) -> None:
        self.settings = settings
        self.collection = collection
        self.search_ef = search_ef
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from pymilvus import MilvusClient

                settings = self.settings
                token = settings.token or (f"{settings.user}:{settings.password}" if settings.user else "")
                self._client = MilvusClient(
                    uri=settings.uri, token=token, db_name=settings.db_name, timeout=self.timeout
                )
            return self._client

    def upsert(self, rows: list[tuple[str, list[float], int]]) -> None:
        data = [{"id": item_id, "embedding": vector, "updated_at": stamp} for item_id, vector, stamp in rows]
        self.client().upsert(self.collection, data, timeout=max(self.timeout, 10.0))

    def search(self, vector: list[float], limit: int) -> list[Hit]:
        results = self.client().search(
            self.collection,
            data=[vector],
            limit=limit,
            search_params={"params": {"ef": max(self.search_ef, limit)}},
            timeout=self.timeout,
            # Bounded staleness (about a second): a strongly consistent search waits ~200 ms for Milvus's time tick.
            consistency_level="Bounded",
        )
        return [Hit(str(hit["id"]), float(hit["distance"])) for hit in results[0]]

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken channel is best effort
                client.close()
