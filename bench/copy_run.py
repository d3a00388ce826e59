"""One embedding copy in its own process, so its peak RSS can be measured. Prints a JSON result."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _sandbox import peak_rss_mb
from ansible.module_utils.hybrid_migration.connections import open_milvus, open_neo4j
from ansible.module_utils.hybrid_migration.embeddings_copy import CopyOptions, EmbeddingsCopy
from ansible.module_utils.hybrid_migration.milvus_writer import MilvusWriter
from ansible.module_utils.hybrid_migration.neo4j_source import EmbeddingReader
from ansible.module_utils.hybrid_migration.settings import MilvusSettings, Neo4jSettings, SourceModel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--collection", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--dimension", type=int, required=True)
    parser.add_argument("--resume-from")
    args = parser.parse_args()
    neo4j_settings = Neo4jSettings.from_mapping({"password": os.environ.get("NEO4J_PASSWORD", "sandbox-neo4j-secret")})
    driver = open_neo4j(neo4j_settings)
    client = open_milvus(MilvusSettings(timeout=60))
    with tempfile.TemporaryDirectory() as state:
        options = CopyOptions(
            collection=args.collection,
            dimension=args.dimension,
            checkpoint_file=Path(state) / "checkpoint.json",
            reject_file=Path(state) / "rejects.jsonl",
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            resume_from=args.resume_from,
            fresh_start=True,
            max_reject_ratio=1.0,
        )
        started = time.perf_counter()
        result = EmbeddingsCopy(
            EmbeddingReader(driver, neo4j_settings.database, SourceModel()),
            MilvusWriter(client, args.collection, timeout=120),
            options,
        ).run()
        seconds = time.perf_counter() - started
    print(json.dumps({"copied": result.copied_this_run, "rejected": result.rejected, "seconds": seconds,
                      "peak_rss_mb": peak_rss_mb()}))  # fmt: skip


if __name__ == "__main__":
    main()
