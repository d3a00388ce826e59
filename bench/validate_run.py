"""One full-scan validation in its own process, so its peak RSS can be measured. Prints a JSON result."""

from __future__ import annotations

import argparse
import json
import resource
import time

from _sandbox import connect, neo4j_settings, peak_rss_mb
from ansible.module_utils.hybrid_migration.milvus_collection import observe
from ansible.module_utils.hybrid_migration.milvus_reader import MilvusRows
from ansible.module_utils.hybrid_migration.milvus_writer import MilvusWriter
from ansible.module_utils.hybrid_migration.neo4j_source import EmbeddingLookup
from ansible.module_utils.hybrid_migration.settings import SourceModel
from ansible.module_utils.hybrid_migration.source_process import ChildProcessBatches
from ansible.module_utils.hybrid_migration.validation import ValidateOptions, Validation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--collection", required=True)
    parser.add_argument("--page-size", type=int, required=True)
    args = parser.parse_args()
    driver, client = connect()
    target = observe(client, args.collection)
    dimension = int(target.dimension or 0)
    started = time.perf_counter()
    result = Validation(
        EmbeddingLookup(driver, neo4j_settings().database, SourceModel()),
        MilvusRows(client, args.collection, timeout=120),
        MilvusWriter(client, args.collection, timeout=120),
        ValidateOptions(dimension=dimension, full_scan=True, target_page_size=args.page_size),
        source_batches=lambda: ChildProcessBatches(neo4j_settings(), SourceModel(), dimension, 512),
    ).run()
    seconds = time.perf_counter() - started
    print(json.dumps({"source_rows": result.source_rows, "matching": result.matching,
                      "success_rate": result.success_rate, "seconds": seconds,
                      "peak_rss_mb": peak_rss_mb() + child_peak_rss_mb()}))  # fmt: skip


def child_peak_rss_mb() -> float:
    """Peak RSS of the finished Neo4j reader process (RUSAGE_CHILDREN: the largest child's high-water mark)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


if __name__ == "__main__":
    main()
