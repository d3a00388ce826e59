"""Turning Neo4j rows into Milvus columns, and naming every row that cannot go.

The hot path is one ``numpy.fromiter`` per batch (the values of every list,
straight into a float32 matrix) and one ``isfinite`` over it; per-row work is only type and length
checks, never a loop over the values of a vector.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

SNIPPET_LENGTH = 120


@dataclass(frozen=True)
class Reject:
    """One row that cannot be migrated, and why."""

    id: str
    kind: str
    reason: str
    snippet: str

    def as_json(self) -> str:
        return json.dumps(
            {"id": self.id, "kind": self.kind, "reason": self.reason, "snippet": self.snippet}, ensure_ascii=False
        )


@dataclass
class Batch:
    """Rows ready for Milvus (columns) plus the rows that were rejected."""

    ids: list[str]
    vectors: np.ndarray
    updated_at: np.ndarray
    rejects: list[Reject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def snippet(value: Any) -> str:
    """A short, printable view of a value for the reject file."""
    if isinstance(value, list):
        head = ", ".join(repr(item) for item in value[:4])
        text = f"[{head}{', ...' if len(value) > 4 else ''}] ({len(value)} items)"
    else:
        text = repr(value)
    return text if len(text) <= SNIPPET_LENGTH else text[: SNIPPET_LENGTH - 3] + "..."


def display_id(raw: Any) -> str:
    """An id as the reject file shows it; over-long ids are cut and marked."""
    if raw is None:
        return "(no id)"
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= 200 else f"{text[:64]}...({len(text)} characters)"


def check_id(raw: Any, id_max_length: int) -> tuple[str | None, Reject | None]:
    """The id Milvus will store, or the reason there is none."""
    if raw is None:
        return None, Reject("(no id)", "missing_id", "missing id", "")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None, Reject(display_id(raw), "bad_id_type", f"id is a {type(raw).__name__}, not a string", snippet(raw))
    text = raw if isinstance(raw, str) else str(raw)
    if text == "":
        return None, Reject("", "empty_id", "empty id", "")
    size = len(text.encode("utf-8"))
    if size > id_max_length:
        return None, Reject(display_id(text), "id_too_long", f"id longer than {id_max_length} bytes ({size} bytes)", "")
    return text, None


def check_embedding_shape(value: Any, dimension: int) -> tuple[str, str] | None:
    """(kind, reason) when the value cannot be a vector of ``dimension`` numbers."""
    if value is None:
        return "missing_embedding", "no embedding"
    if not isinstance(value, list):
        return "not_numeric", f"embedding is not a list of numbers (it is a {type(value).__name__})"
    if value and (isinstance(value[0], bool) or not isinstance(value[0], float | int)):
        return "not_numeric", f"embedding is not a list of numbers (it holds {type(value[0]).__name__})"
    if len(value) != dimension:
        return "wrong_dimension", f"dimension {len(value)}, expected {dimension}"
    return None


def normalize(
    rows: list[tuple[Any, Any, Any]],
    dimension: int,
    id_max_length: int,
    seen_ids: set[str] | None = None,
) -> Batch:
    """Validate a page of ``(id, embedding, updated_at)`` rows and build Milvus columns.

    Args:
        seen_ids: ids already accepted in this run; a repeat is a duplicate.
            Updated in place.
    """
    seen = seen_ids if seen_ids is not None else set()
    rejects: list[Reject] = []
    ids: list[str] = []
    lists: list[list[float]] = []
    stamps: list[int] = []
    for raw_id, embedding, updated_at in rows:
        item_id, problem = check_id(raw_id, id_max_length)
        if problem:
            rejects.append(problem)
            continue
        assert item_id is not None
        shape_problem = check_embedding_shape(embedding, dimension)
        if shape_problem:
            rejects.append(Reject(display_id(item_id), *shape_problem, snippet(embedding)))
            continue
        if item_id in seen:
            rejects.append(Reject(display_id(item_id), "duplicate_id", f"duplicate id {item_id!r}", ""))
            continue
        seen.add(item_id)
        ids.append(item_id)
        lists.append(embedding)
        stamps.append(updated_at if isinstance(updated_at, int) and not isinstance(updated_at, bool) else 0)
    if not ids:
        return Batch([], np.empty((0, dimension), np.float32), np.empty(0, np.int64), rejects)
    with np.errstate(over="ignore", invalid="ignore"):
        # One pass over all values straight into float32: about 40% faster than np.asarray(lists).
        vectors = np.fromiter(chain.from_iterable(lists), dtype=np.float32, count=len(lists) * dimension)
    vectors = vectors.reshape(len(lists), dimension)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        keep = np.flatnonzero(finite)
        for index in np.flatnonzero(~finite):
            seen.discard(ids[index])
            rejects.append(
                Reject(display_id(ids[index]), "not_finite", "NaN or Inf in embedding (after float32 conversion)",
                       snippet(lists[index]))
            )  # fmt: skip
        ids = [ids[i] for i in keep]
        vectors = vectors[keep]
        stamps = [stamps[i] for i in keep]
    return Batch(ids, vectors, np.asarray(stamps, dtype=np.int64), rejects)


def normalize_other_ids(
    rows: list[tuple[Any, Any, Any]],
    string_ids_taken: Callable[[list[str]], set[str]],
    dimension: int,
    id_max_length: int,
) -> Batch:
    """Like ``normalize``, for rows whose id is missing or not a string.

    An integer id is stored as its decimal text; when another node has that text as its string
    id (``string_ids_taken`` says which of the texts are), the two would be one row in Milvus,
    so this one is rejected as a duplicate.
    """
    texts = [check_id(row[0], id_max_length)[0] for row in rows]
    taken = string_ids_taken([text for text in texts if text])
    duplicates: list[Reject] = []
    kept = []
    for row, text in zip(rows, texts, strict=True):
        if text is not None and text in taken:
            duplicates.append(
                Reject(text, "duplicate_id", f"duplicate id {text!r}: a {type(row[0]).__name__} id equal to "
                       "another node's string id", "")
            )  # fmt: skip
            continue
        kept.append((row[0] if text is None else text, row[1], row[2]))
    batch = normalize(kept, dimension, id_max_length)
    batch.rejects[:0] = duplicates
    return batch
