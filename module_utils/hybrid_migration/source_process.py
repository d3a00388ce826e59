"""Reading and normalizing the Neo4j side of a full scan in a process of its own.

Decoding Bolt's floats into Python objects is most of the client's work in a full
scan, and it holds the GIL: in one process it takes turns with reading Milvus and
comparing. A child process does it on the other core and hands over float32
batches (pickled numpy arrays: one buffer copy, no per-value work).
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .neo4j_source import EmbeddingReader, Page
from .prefetch import Prefetch
from .retry import RetryPolicy, with_retries
from .settings import Neo4jSettings, SourceModel
from .transform import Batch, normalize

_END = "end"


def string_id_pages(read_page: Callable[[str, int, int], Page], page_size: int, retry: RetryPolicy) -> Iterator[Page]:
    """Pages of string-id rows in id order (keyset on the id), each read retried on transient failures."""
    last, seen_at_last = "", 0
    while True:
        page = with_retries(lambda last=last, seen=seen_at_last: read_page(last, seen, page_size), retry)
        if not page.rows:
            return
        yield page
        last, seen_at_last = page.last_key, page.seen_at_last_key


def normalized(pages: Iterable[Page], dimension: int, id_max_length: int) -> Iterator[Batch]:
    """Each page validated and converted by the copy's rules (an id equal to the one before is a duplicate)."""
    previous = None
    for page in pages:
        seen = {previous} if previous is not None else set()
        batch = normalize(page.rows, dimension, id_max_length, seen_ids=seen)
        if batch.ids:
            previous = batch.ids[-1]
        yield batch


def string_id_batches(
    read_page: Callable[[str, int, int], Page],
    dimension: int,
    id_max_length: int,
    page_size: int,
    retry: RetryPolicy,
) -> Iterator[Batch]:
    """Normalized pages of string-id rows in id order, by the copy's reader and rules."""
    return normalized(string_id_pages(read_page, page_size, retry), dimension, id_max_length)


def _produce(
    results: Any,
    settings: Neo4jSettings,
    model: SourceModel,
    dimension: int,
    id_max_length: int,
    page_size: int,
    retry: RetryPolicy,
) -> None:
    from .connections import open_neo4j

    driver = None
    try:
        driver = open_neo4j(settings)
        reader = EmbeddingReader(driver, settings.database, model)
        pages = Prefetch(string_id_pages(reader.string_id_page, page_size, retry), depth=2)
        try:
            for batch in normalized(pages, dimension, id_max_length):
                results.put(batch)
        finally:
            pages.close()
        results.put(_END)
    except BaseException as error:  # handed to the parent, raised there
        results.put(error)
    finally:
        if driver is not None:
            driver.close()


class ChildProcessBatches:
    """Iterates over the batches a child process reads; errors in the child are raised here."""

    def __init__(
        self,
        settings: Neo4jSettings,
        model: SourceModel,
        dimension: int,
        id_max_length: int,
        page_size: int = 1000,
        retry: RetryPolicy | None = None,
        depth: int = 4,
    ) -> None:
        context = multiprocessing.get_context("fork")
        self._results = context.Queue(maxsize=depth)
        self._process = context.Process(
            target=_produce,
            args=(self._results, settings, model, dimension, id_max_length, page_size, retry or RetryPolicy()),
            name="validate-neo4j-reader",
            daemon=True,
        )
        self._process.start()

    def __iter__(self) -> Iterator[Batch]:
        while True:
            try:
                item = self._results.get(timeout=5)
            except queue.Empty:
                if not self._process.is_alive():
                    raise RuntimeError(
                        f"the Neo4j reader process ended without a result (exit code {self._process.exitcode})"
                    ) from None
                continue
            if isinstance(item, str) and item == _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=10)
        self._results.close()
