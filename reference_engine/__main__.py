"""Run one engine instance: ``python -m reference_engine --instance-id engine-1 --port 8081``.

Connection settings come from the environment as JSON objects shaped like the modules'
options (``ENGINE_NEO4J``, ``ENGINE_MILVUS``, ``ENGINE_POSTGRES``, ``ENGINE_SOURCE``), so
passwords never appear on a command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from hybrid_migration.connections import open_postgres
from hybrid_migration.engine_control import DEFAULT_FLEET, DEFAULT_SCHEMA, ControlRecord
from hybrid_migration.settings import MilvusSettings, Neo4jSettings, PostgresSettings, SourceModel

from .engine import Engine, EngineSettings, RepairQueue
from .metrics import EngineMetrics
from .mode_source import ConfigFileMode, ControlRecordWatcher
from .server import EngineServer
from .stores import MilvusStore, Neo4jStore

log = logging.getLogger("reference_engine")


def _settings(name: str) -> dict[str, Any]:
    text = os.environ.get(name, "")
    return json.loads(text) if text else {}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reference_engine", description=__doc__)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode-source", choices=["control_record", "config_file"], default="control_record")
    parser.add_argument("--config-file", type=Path, help="with --mode-source config_file: YAML with storage_mode")
    parser.add_argument("--fleet", default=DEFAULT_FLEET)
    parser.add_argument("--control-schema", default=DEFAULT_SCHEMA)
    parser.add_argument("--collection", default="media_embeddings")
    parser.add_argument("--dimension", type=int, default=768)
    parser.add_argument("--milvus-search-ef", type=int, default=128)
    parser.add_argument("--milvus-timeout", type=float, default=2.0)
    parser.add_argument("--repair-journal", type=Path, help="file keeping ids queued for repair across restarts")
    parser.add_argument(
        "--neo4j-group-commit", type=float, default=0.1, help="seconds concurrent writes wait to share a commit"
    )
    parser.add_argument("--milvus-writes", choices=["background", "inline"], default="background")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds between control-record reads")
    return parser.parse_args(argv)


class Health:
    """Neo4j reachability, asked at most once a second."""

    def __init__(self, engine: Engine, graph: Neo4jStore) -> None:
        self.engine = engine
        self.graph = graph
        self._checked = 0.0
        self._ok = False
        self._error = ""
        self._lock = threading.Lock()

    def __call__(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if time.monotonic() - self._checked > 1.0:
                try:
                    self.graph.ping()
                    self._ok, self._error = True, ""
                except Exception as error:
                    self._ok, self._error = False, str(error)
                self._checked = time.monotonic()
        body = {"status": "ok" if self._ok else "neo4j unreachable", **self.engine.describe()}
        if self._error:
            body["error"] = self._error
        return (200 if self._ok else 503), body


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = SourceModel.from_mapping(_settings("ENGINE_SOURCE"))
    graph = Neo4jStore(Neo4jSettings.from_mapping(_settings("ENGINE_NEO4J")), model)
    vectors = MilvusStore(
        MilvusSettings.from_mapping(_settings("ENGINE_MILVUS")),
        arguments.collection,
        arguments.milvus_search_ef,
        arguments.milvus_timeout,
    )
    metrics = EngineMetrics(arguments.instance_id)
    engine = Engine(
        EngineSettings(
            instance_id=arguments.instance_id,
            dimension=arguments.dimension,
            milvus_writes=arguments.milvus_writes,
            neo4j_group_commit_seconds=arguments.neo4j_group_commit,
        ),
        graph,
        vectors,
        metrics,
        RepairQueue(arguments.repair_journal),
    )
    server = EngineServer((arguments.host, arguments.port), engine, Health(engine, graph))
    address = f"http://{arguments.host}:{server.server_address[1]}"
    watcher: ControlRecordWatcher | None = None
    if arguments.mode_source == "config_file":
        if arguments.config_file is None:
            raise SystemExit("--mode-source config_file needs --config-file")
        file_mode = ConfigFileMode(engine, arguments.config_file)
        file_mode.reload()
        signal.signal(signal.SIGHUP, lambda *_: file_mode.reload())
    else:
        postgres = PostgresSettings.from_mapping(_settings("ENGINE_POSTGRES"))
        control = ControlRecord(
            lambda: open_postgres(postgres, autocommit=True), arguments.control_schema, arguments.fleet
        )
        watcher = ControlRecordWatcher(engine, control, address, poll_interval=arguments.poll_interval)
        watcher.start()
    engine.start_repairs()

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("instance %s serving %s on %s", arguments.instance_id, engine.mode, address)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        if watcher is not None:
            watcher.stop()
        engine.close()
        vectors.close()
        graph.close()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
