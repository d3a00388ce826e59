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

from .errors import TerminalError, TransientError
from .settings import SourceModel, quote_identifier

if TYPE_CHECKING:
    import neo4j

Row = tuple[Any, Any, Any]  # (id, embedding, updated_at)


def read_query(driver: neo4j.Driver, database: str, query: str, parameters: dict[str, Any]) -> list[Any]:
    """Run a read query, its failures sorted into transient (retry) and terminal.

    Raises:
        TransientError: the server is unavailable, the session expired, or the read hit a transient error.
        TerminalError: Neo4j refused the query.
    """
    from neo4j import exceptions as neo4j_errors

    try:
        records, _, _ = driver.execute_query(query, parameters, database_=database, routing_="r")
    except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired, neo4j_errors.TransientError) as error:
        raise TransientError(f"Neo4j read failed: {error}") from error
    except neo4j_errors.Neo4jError as error:
        raise TerminalError(f"Neo4j refused the read: {error.message}") from error
    except OSError as error:
        raise TransientError(f"Neo4j read failed: {error}") from error
    return records


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
        # Quoted label, id property and the returned (id, embedding, updated_at), for every query here and below.
        self._label = label = quote_identifier(model.label)
        self._id = idp = quote_identifier(model.id_property)
        self._values = values = (
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
        return read_query(self.driver, self.database, query, parameters)

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


class EmbeddingLookup(EmbeddingReader):
    """The reader plus point reads, samples and change scans, for validation and catch-up."""

    def __init__(self, driver: neo4j.Driver, database: str, model: SourceModel) -> None:
        super().__init__(driver, database, model)
        label, idp, values = self._label, self._id, self._values
        stamp = quote_identifier(model.updated_at_property)
        self._by_ids = f"MATCH (m:{label}) WHERE m.{idp} IN $ids RETURN {values}"
        self._sample = (
            f"MATCH (m:{label}) WHERE m.{idp} IS :: STRING NOT NULL "
            f"WITH m.{idp} AS id, rand() AS r ORDER BY r LIMIT $limit RETURN id"
        )
        self._any_stamp = f"MATCH (m:{label}) WHERE m.{stamp} IS NOT NULL RETURN count(m) > 0 AS present LIMIT 1"
        self._changed = (
            f"MATCH (m:{label}) WHERE m.{stamp} >= $last AND m.{stamp} < $until RETURN {values}, elementId(m) "
            f"ORDER BY m.{stamp}, elementId(m) LIMIT $limit"
        )

    def rows_for_ids(self, ids: list[str]) -> list[Row]:
        """Rows whose id is one of ``ids``, matching string ids and integer ids by their text
        (the copy stores an integer id as its decimal text)."""
        if not ids:
            return []
        integers = [int(text) for text in ids if text.lstrip("-").isdigit() and str(int(text)) == text]
        rows = [(r[0], r[1], r[2]) for r in self._query(self._by_ids, ids=ids)]
        if integers:
            rows += [(r[0], r[1], r[2]) for r in self._query(self._by_ids, ids=integers)]
        return rows

    def sample_string_ids(self, size: int) -> list[str]:
        """``size`` string ids drawn uniformly without replacement from the whole label."""
        return [record[0] for record in self._query(self._sample, limit=size)]

    def has_updated_at(self) -> bool:
        """Whether any node under the label carries the updated-at property."""
        records = self._query(self._any_stamp)
        return bool(records and records[0][0])

    def updated_at_indexed(self) -> bool:
        """Whether a range index covers the updated-at property (else catch-up scans the label)."""
        records = self._query(
            "SHOW RANGE INDEXES YIELD labelsOrTypes, properties, state "
            "WHERE labelsOrTypes = [$label] AND properties = [$property] AND state = 'ONLINE' RETURN count(*)",
            label=self.model.label,
            property=self.model.updated_at_property,
        )
        return bool(records and records[0][0])

    def changed_page(
        self, last: int, until: int, seen: frozenset[str], limit: int
    ) -> tuple[list[Row], int, frozenset[str]]:
        """The next ``limit`` rows whose updated-at is in [``last``, ``until``), in (updated-at, elementId) order.

        ``seen`` holds the elementIds already returned with updated-at equal to ``last``; returns the rows
        and the cursor for the next page. The upper bound keeps a pass finite while writes go on.
        """
        records = self._query(self._changed, last=last, until=until, limit=limit + len(seen))
        page = [record for record in records if record[3] not in seen][:limit]
        if not page:
            return [], last, seen
        final = page[-1][2]
        at_final = {record[3] for record in page if record[2] == final}
        next_seen = frozenset(seen | at_final) if final == last else frozenset(at_final)
        return [(r[0], r[1], r[2]) for r in page], final, next_seen
