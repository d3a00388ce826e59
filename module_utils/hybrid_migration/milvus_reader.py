"""Reading back from Milvus by id and in id order, with every id escaped in the filter expression.

Ids come from the source and may hold quotes, backslashes and any Unicode; a
filter built by pasting them in would break or, worse, match other rows
(pymilvus's own query iterator does paste them in). Vectors are read through the
gRPC stub and decoded with one ``numpy.frombuffer`` per page: pymilvus builds a
Python float for every value, which makes it read 2-3 times slower.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import TransientError
from .milvus_collection import ID_FIELD, UPDATED_AT_FIELD, VECTOR_FIELD
from .milvus_writer import call_stub

if TYPE_CHECKING:
    from pymilvus import MilvusClient

MAX_QUERY_LIMIT = 16384  # Milvus's cap on rows per query


def string_literal(value: str) -> str:
    """A double-quoted Milvus expression literal; backslash and double quote escaped (Go unquoting)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def id_filter(ids: Iterable[str]) -> str:
    """``id in [...]`` for exactly these ids."""
    return f"{ID_FIELD} in [{', '.join(string_literal(i) for i in ids)}]"


def after_filter(after: str | None) -> str:
    """The ids after ``after`` in id order (every id when None)."""
    return f'{ID_FIELD} != ""' if after is None else f"{ID_FIELD} > {string_literal(after)}"


def decode_float_array(message: Any) -> np.ndarray:
    """The values of a protobuf ``FloatArray`` as float32, without a Python float per value.

    A packed ``repeated float`` serializes as tag, varint length and the raw little-endian floats.
    """
    raw = message.SerializeToString()
    if not raw:
        return np.empty(0, np.float32)
    position, length, shift = 1, 0, 0
    while True:
        byte = raw[position]
        length |= (byte & 0x7F) << shift
        position += 1
        shift += 7
        if byte < 0x80:
            break
    return np.frombuffer(raw, dtype="<f4", offset=position, count=length // 4)


class MilvusRows:
    """Reads of one collection that see every write made before them: pages in id order, lookups by id,
    deletes.

    A strongly consistent query waits for Milvus's time tick (about 200 ms here), which would dominate a
    scan of small pages. So a scan's first page is strong and the later ones are not: once the first has
    been served, everything written before the scan started is visible to every query after it.
    """

    def __init__(self, client: MilvusClient, collection: str, db_name: str = "default", timeout: float = 60.0) -> None:
        self.client = client
        self.collection = collection
        self.db_name = db_name
        self.timeout = timeout

    def _query(
        self, expression: str, fields: list[str], limit: int | None = None, strong: bool = True
    ) -> dict[str, Any]:
        """One Query RPC (strongly consistent unless told otherwise); returns the response's fields by name.

        Raises:
            TransientError: Milvus is unavailable or timed out.
            TerminalError: Milvus refused the query.
        """
        from pymilvus.grpc_gen import common_pb2, milvus_pb2

        request = milvus_pb2.QueryRequest(
            db_name=self.db_name,
            collection_name=self.collection,
            expr=expression,
            output_fields=fields,
            guarantee_timestamp=0 if strong else 1,
            use_default_consistency=False,
            consistency_level=common_pb2.ConsistencyLevel.Strong if strong else common_pb2.ConsistencyLevel.Eventually,
        )
        if limit is not None:
            # "iterator" makes Milvus reduce the segments' results in primary-key order under the limit.
            for key, value in (("limit", str(limit)), ("iterator", "True"), ("reduce_stop_for_best", "True")):
                request.query_params.add(key=key, value=value)
        response = call_stub(self.client, "Query", request, self.timeout, "query", f"on {self.collection!r}")
        return {field.field_name: field for field in response.fields_data}

    @staticmethod
    def _ids(fields: dict[str, Any]) -> list[str]:
        field = fields.get(ID_FIELD)
        return list(field.scalars.string_data.data) if field is not None else []

    @staticmethod
    def _vectors(fields: dict[str, Any], rows: int) -> np.ndarray:
        field = fields.get(VECTOR_FIELD)
        if field is None or rows == 0:
            return np.empty((0, 0), np.float32)
        return decode_float_array(field.vectors.float_vector).reshape(rows, field.vectors.dim)

    def page(self, after: str | None, page_size: int = 5000) -> tuple[list[str], np.ndarray]:
        """The next (ids, vectors) page after ``after`` in ascending id order (byte order of the UTF-8 ids)."""
        limit = max(1, min(page_size, MAX_QUERY_LIMIT))
        fields = self._query(after_filter(after), [ID_FIELD, VECTOR_FIELD], limit, strong=after is None)
        ids = self._ids(fields)
        return ids, self._vectors(fields, len(ids))

    def pages(self, page_size: int = 5000, after: str | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every (ids, vectors) page from ``after`` on."""
        while True:
            ids, vectors = self.page(after, page_size)
            if not ids:
                return
            yield ids, vectors
            after = ids[-1]

    def vectors(self, ids: list[str], chunk: int = 1000) -> dict[str, np.ndarray]:
        """The stored vector of each of ``ids`` that Milvus holds."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), chunk):
            fields = self._query(id_filter(ids[start : start + chunk]), [ID_FIELD, VECTOR_FIELD])
            got = self._ids(fields)
            matrix = self._vectors(fields, len(got))
            found.update(zip(got, matrix, strict=True))
        return found

    def updated_at(self, ids: list[str], chunk: int = 1000) -> dict[str, int]:
        """The stored updated-at stamp of each of ``ids`` that Milvus holds."""
        found: dict[str, int] = {}
        for start in range(0, len(ids), chunk):
            fields = self._query(id_filter(ids[start : start + chunk]), [ID_FIELD, UPDATED_AT_FIELD])
            got = self._ids(fields)
            stamps = fields.get(UPDATED_AT_FIELD)
            values = list(stamps.scalars.long_data.data) if stamps is not None else [0] * len(got)
            found.update(zip(got, values, strict=True))
        return found

    def count(self) -> int:
        """Rows in the collection, at strong consistency."""
        fields = self._query("", ["count(*)"])
        field = fields.get("count(*)")
        return int(field.scalars.long_data.data[0]) if field is not None else 0

    def delete(self, ids: list[str], chunk: int = 1000) -> int:
        """Delete exactly these ids; returns how many deletes Milvus acknowledged."""
        from pymilvus.exceptions import MilvusException

        deleted = 0
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            try:
                result = self.client.delete(self.collection, filter=id_filter(part), timeout=self.timeout)
            except MilvusException as error:
                raise TransientError(f"Milvus delete failed: {error}") from error
            deleted += int(result.get("delete_count", len(part)) if isinstance(result, dict) else len(part))
        return deleted


def fetch_vectors(client: MilvusClient, collection: str, ids: list[str], chunk: int = 500) -> dict[str, np.ndarray]:
    """The stored vector of each of ``ids`` that Milvus holds, as float32."""
    return MilvusRows(client, collection).vectors(ids, chunk)


def all_ids(client: MilvusClient, collection: str, batch_size: int = 5000) -> Iterator[str]:
    """Every id in the collection, in id order (bounded memory)."""
    rows = MilvusRows(client, collection)
    limit = max(1, min(batch_size, MAX_QUERY_LIMIT))
    after: str | None = None
    while True:
        ids = rows._ids(rows._query(after_filter(after), [ID_FIELD], limit, strong=after is None))
        if not ids:
            return
        yield from ids
        after = ids[-1]
