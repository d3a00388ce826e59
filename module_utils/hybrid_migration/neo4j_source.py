"""Reading embeddings from Neo4j: keyset pagination in a stable order.

Two passes: nodes whose id is a string, paged by the id itself through the range
index of the unique constraint (``id >= $last``, skipping what was already seen
at the boundary, so equal ids without a constraint are still all seen); then the
few nodes whose id is missing or not a string, paged by ``elementId``. Rows are
returned as plain tuples: ``Record.data()`` costs more than the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .settings import SourceModel, quote_identifier

if TYPE_CHECKING:
    import neo4j

Row = tuple[Any, Any, Any]  # (id, embedding, updated_at)


@dataclass
class Page:
    """One batch of rows and where the next one starts."""

    rows: list[Row]
    last_key: Any
    seen_at_last_key: int


def vector_index_info(driver: neo4j.Driver, database: str, name: str) -> dict[str, Any] | None:
    """The vector index's label, property, state, similarity function and dimension, or None."""
    records, _, _ = driver.execute_query(
        "SHOW VECTOR INDEXES YIELD name, state, labelsOrTypes, properties, options WHERE name = $name "
        "RETURN name, state, labelsOrTypes, properties, options",
        {"name": name},
        database_=database,
        routing_="r",
    )
    if not records:
        return None
    row = records[0]
    config = (row["options"] or {}).get("indexConfig", {})
    return {
        "name": row["name"],
        "state": row["state"],
        "label": (row["labelsOrTypes"] or [None])[0],
        "property": (row["properties"] or [None])[0],
        "similarity_function": str(config.get("vector.similarity_function", "")).lower(),
        "dimension": config.get("vector.dimensions"),
    }


class EmbeddingReader:
    """Pages through the embeddings of one label."""

    def __init__(self, driver: neo4j.Driver, database: str, model: SourceModel) -> None:
        self.driver = driver
        self.database = database
        self.model = model
        label = quote_identifier(model.label)
        idp = quote_identifier(model.id_property)
        values = (
            f"m.{idp}, m.{quote_identifier(model.embedding_property)}, m.{quote_identifier(model.updated_at_property)}"
        )
        self._string_page = (
            f"MATCH (m:{label}) WHERE m.{idp} >= $last AND m.{idp} IS :: STRING NOT NULL "
            f"RETURN {values} ORDER BY m.{idp} LIMIT $limit"
        )
        self._other_page = (
            f"MATCH (m:{label}) WHERE (m.{idp} IS NULL OR NOT m.{idp} IS :: STRING NOT NULL) "
            f"AND elementId(m) > $last RETURN {values}, elementId(m) ORDER BY elementId(m) LIMIT $limit"
        )
        self._count = f"MATCH (m:{label}) RETURN count(m)"
        self._string_ids_in = f"MATCH (m:{label}) WHERE m.{idp} IN $ids RETURN m.{idp}"

    def _query(self, query: str, **parameters: Any) -> list[Any]:
        records, _, _ = self.driver.execute_query(query, parameters, database_=self.database, routing_="r")
        return records

    def count(self) -> int:
        """Nodes under the label (from the count store, so it is cheap)."""
        return int(self._query(self._count)[0][0])

    def string_id_page(self, last: str, seen_at_last: int, limit: int) -> Page:
        """The next ``limit`` rows with string ids from ``last`` on.

        ``seen_at_last`` rows with id == ``last`` were already returned by earlier
        pages; they are skipped here, others equal to it are not.
        """
        records = self._query(self._string_page, last=last, limit=limit + seen_at_last)
        rows: list[Row] = []
        skipped = 0
        for record in records:
            if skipped < seen_at_last and record[0] == last:
                skipped += 1
                continue
            rows.append((record[0], record[1], record[2]))
        if not rows:
            return Page(rows, last, seen_at_last)
        final = rows[-1][0]
        at_final = sum(1 for row in rows if row[0] == final) + (seen_at_last if final == last else 0)
        return Page(rows, final, at_final)

    def other_id_pages(self, limit: int) -> Iterator[Page]:
        """Rows whose id is missing or not a string, in elementId order."""
        last = ""
        while True:
            records = self._query(self._other_page, last=last, limit=limit)
            if not records:
                return
            last = records[-1][3]
            yield Page([(r[0], r[1], r[2]) for r in records], last, 0)

    def existing_string_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are string ids of other nodes (for duplicate detection)."""
        if not ids:
            return set()
        return {record[0] for record in self._query(self._string_ids_in, ids=ids)}
