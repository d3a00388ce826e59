"""Reading back from Milvus by id, with every id escaped in the filter expression.

Ids come from the source and may hold quotes, backslashes and any Unicode; a
filter built by pasting them in would break or, worse, match other rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from .milvus_collection import ID_FIELD, VECTOR_FIELD

if TYPE_CHECKING:
    from pymilvus import MilvusClient


def string_literal(value: str) -> str:
    """A double-quoted Milvus expression literal; backslash and double quote escaped (Go unquoting)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def id_filter(ids: Iterable[str]) -> str:
    """``id in [...]`` for exactly these ids."""
    return f"{ID_FIELD} in [{', '.join(string_literal(i) for i in ids)}]"


def fetch_vectors(client: MilvusClient, collection: str, ids: list[str], chunk: int = 500) -> dict[str, np.ndarray]:
    """The stored vector of each of ``ids`` that Milvus holds, as float32."""
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        rows = client.query(collection, filter=id_filter(part), output_fields=[ID_FIELD, VECTOR_FIELD])
        for row in rows:
            found[row[ID_FIELD]] = np.asarray(row[VECTOR_FIELD], dtype=np.float32)
    return found


def all_ids(client: MilvusClient, collection: str, batch_size: int = 5000) -> Iterator[str]:
    """Every id in the collection (query iterator, bounded memory)."""
    iterator = client.query_iterator(collection, batch_size=batch_size, output_fields=[ID_FIELD])
    try:
        while True:
            rows = iterator.next()
            if not rows:
                return
            for row in rows:
                yield row[ID_FIELD]
    finally:
        iterator.close()
