"""Open-loop load against engine instances, and the check that no acknowledged write was lost.

``python -m reference_engine.load run --endpoint URL ... --journal F --summary S`` sends writes
and searches at fixed rates whatever the answers take (latency is measured from when a request
was due, so a stall shows up in full instead of slowing the load down), until ``--duration``
passes, the ``--stop-file`` appears or SIGTERM arrives. Every acknowledged write goes into the
journal with what is needed to regenerate its vector.

``python -m reference_engine.load verify --journal F [--milvus]`` checks that the last
acknowledged write of every id is what Neo4j (and Milvus) hold.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from hybrid_migration.seed import normalised_vectors
from hybrid_migration.settings import MilvusSettings, Neo4jSettings, SourceModel, quote_identifier


def load_vector(run_seed: int, number: int, dimension: int) -> list[float]:
    """The vector of write ``number``: shaped like the seeded ones, float32-exact, reproducible from the journal."""
    vector = normalised_vectors(np.random.default_rng([run_seed, number]), 1, dimension)[0]
    return [float(x) for x in vector]


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM), 0 where /proc is missing."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    lines = [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")]
    return round(int(lines[0].split()[1]) / 1024, 1) if lines else 0.0


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


@dataclass
class Tally:
    """Outcomes and latencies of one kind of request."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    served_by: Counter[str] = field(default_factory=Counter)


class LoadRun:
    """Schedules requests at fixed rates on a thread pool and records what happened."""

    def __init__(self, arguments: argparse.Namespace, pool_ids: list[str]) -> None:
        self.arguments = arguments
        self.endpoints = [urlsplit(url) for url in arguments.endpoint]
        self.pool_ids = pool_ids
        self.run_seed = arguments.run_seed
        self.tallies = {"write": Tally(), "search": Tally()}
        self.errors: list[str] = []
        self.slowest: dict[str, Any] = {"ms": 0.0}
        self.per_second: dict[int, float] = {}
        self.lock = threading.Lock()
        self.local = threading.local()
        self.stop = threading.Event()
        self.in_flight: set[str] = set()
        self.backlog_at_stop = 0
        self.journal = arguments.journal.open("a", encoding="utf-8", buffering=1)
        self.pool_cursor = itertools.cycle(range(len(pool_ids))) if pool_ids else None

    def _connection(self, index: int) -> http.client.HTTPConnection:
        connections = getattr(self.local, "connections", None)
        if connections is None:
            connections = self.local.connections = {}
        if index not in connections:
            endpoint = self.endpoints[index]
            connections[index] = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
        return connections[index]

    def _request(self, index: int, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            connection = self._connection(index)
            try:
                connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed between requests: reopen once.
                connection.close()
                self.local.connections.pop(index, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _pick_update_id(self) -> str | None:
        """An existing id not being written right now, so writes to one id never overlap."""
        if self.pool_cursor is None:
            return None
        with self.lock:
            for _ in range(len(self.pool_ids)):
                candidate = self.pool_ids[next(self.pool_cursor)]
                if candidate not in self.in_flight:
                    self.in_flight.add(candidate)
                    return candidate
        return None

    def write(self, due: float, number: int) -> None:
        arguments = self.arguments
        # An even spread of new items among updates: exactly new_item_share of the writes create one.
        new_item = int((number + 1) * arguments.new_item_share) > int(number * arguments.new_item_share)
        item_id = None if new_item else self._pick_update_id()
        fresh = item_id is None
        if fresh:
            item_id = f"load-{self.run_seed}-{number:08d}"
        vector = load_vector(self.run_seed, number, arguments.dimension)
        body = json.dumps({"embedding": vector}).encode()
        index = number % len(self.endpoints)
        try:
            status, payload = self._request(index, "PUT", f"/media/{quote(item_id, safe='')}/embedding", body)
            ok = status == 200
            if ok:
                answer = json.loads(payload)
                line = {"id": item_id, "n": number, "updated_at": answer["updated_at"], "mode": answer["mode"]}
                with self.lock:
                    self.journal.write(json.dumps(line) + "\n")
            detail = "" if ok else f"write {item_id!r}: HTTP {status} {payload[:200]!r}"
        except Exception as error:
            ok, detail = False, f"write {item_id!r}: {type(error).__name__}: {error}"
        finally:
            if not fresh:
                with self.lock:
                    self.in_flight.discard(item_id)
        self._record("write", due, ok, detail, index, None)

    def search(self, due: float, number: int) -> None:
        if not self.pool_ids:
            return
        item_id = self.pool_ids[(number * 7919) % len(self.pool_ids)]
        index = number % len(self.endpoints)
        served_by = None
        try:
            status, payload = self._request(index, "GET", f"/media/{quote(item_id, safe='')}/similar?k=10", None)
            ok = status == 200
            served_by = json.loads(payload).get("served_by") if ok else None
            detail = "" if ok else f"search {item_id!r}: HTTP {status} {payload[:200]!r}"
        except Exception as error:
            ok, detail = False, f"search {item_id!r}: {type(error).__name__}: {error}"
        self._record("search", due, ok, detail, index, served_by)

    def _record(self, kind: str, due: float, ok: bool, detail: str, index: int, served_by: str | None) -> None:
        finished = time.time()
        latency = (finished - due) * 1000
        with self.lock:
            tally = self.tallies[kind]
            tally.ok += ok
            tally.failed += not ok
            tally.latencies.append(latency)
            if served_by:
                tally.served_by[served_by] += 1
            if detail and len(self.errors) < 50:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {detail}")
            second = int(due)
            self.per_second[second] = max(self.per_second.get(second, 0.0), latency)
            if latency > self.slowest["ms"]:
                self.slowest = {
                    "ms": round(latency, 1),
                    "kind": kind,
                    "endpoint": self.arguments.endpoint[index],
                    "due_epoch_ms": int(due * 1000),
                }

    def run(self) -> dict[str, Any]:
        arguments = self.arguments
        rates = {"write": arguments.writes_per_second, "search": arguments.searches_per_second}
        started = time.time()
        next_due = {kind: started for kind, rate in rates.items() if rate > 0}
        numbers = {kind: itertools.count() for kind in rates}
        deadline = started + arguments.duration if arguments.duration else float("inf")
        pool = ThreadPoolExecutor(arguments.workers, thread_name_prefix="load")
        futures = []
        while not self.stop.is_set() and next_due:
            kind = min(next_due, key=lambda name: next_due[name])
            due = next_due[kind]
            if due >= deadline or (arguments.stop_file and arguments.stop_file.exists()):
                break
            delay = due - time.time()
            if delay > 0 and self.stop.wait(min(delay, 0.5)):
                break
            if delay > 0.5:
                continue
            number = next(numbers[kind])
            with self.lock:
                self.tallies[kind].sent += 1
            futures.append((kind, pool.submit(self.write if kind == "write" else self.search, due, number)))
            next_due[kind] = due + 1.0 / rates[kind]
            if len(futures) > 10_000:
                futures = [(k, f) for k, f in futures if not f.done()]
        # Requests still waiting for a worker two seconds after the stop were never sent: such a
        # backlog means the engines could not keep up with the rate, and the summary says so.
        wait([future for _, future in futures], timeout=2.0)
        for kind, future in futures:
            if future.cancel():
                with self.lock:
                    self.tallies[kind].sent -= 1
                    self.backlog_at_stop += 1
        pool.shutdown(wait=True)
        self.journal.close()
        return self.summary(started, time.time())

    def summary(self, started: float, ended: float) -> dict[str, Any]:
        seconds = ended - started
        kinds = {}
        every: list[float] = []
        for kind, tally in self.tallies.items():
            ordered = sorted(tally.latencies)
            every.extend(ordered)
            kinds[kind] = {
                "sent": tally.sent,
                "ok": tally.ok,
                "failed": tally.failed,
                "per_second": round(tally.sent / seconds, 1) if seconds else 0.0,
                "latency_ms": {
                    "p50": round(percentile(ordered, 0.50), 1),
                    "p95": round(percentile(ordered, 0.95), 1),
                    "p99": round(percentile(ordered, 0.99), 1),
                    "max": round(ordered[-1], 1) if ordered else 0.0,
                },
                "served_by": dict(tally.served_by),
            }
        return {
            "started_epoch_ms": int(started * 1000),
            "ended_epoch_ms": int(ended * 1000),
            "seconds": round(seconds, 1),
            "endpoints": self.arguments.endpoint,
            "requests": sum(t.sent for t in self.tallies.values()),
            "failed": sum(t.failed for t in self.tallies.values()),
            "writes": kinds["write"],
            "searches": kinds["search"],
            "slowest": self.slowest,
            "backlog_at_stop": self.backlog_at_stop,
            "peak_rss_mb": peak_rss_mb(),
            "max_latency_ms_by_second": {str(second): round(ms, 1) for second, ms in sorted(self.per_second.items())},
            "errors": self.errors,
        }


def _settings(name: str) -> dict[str, Any]:
    text = os.environ.get(name, "")
    return json.loads(text) if text else {}


def _neo4j() -> tuple[Any, Neo4jSettings, SourceModel]:
    import neo4j

    settings = Neo4jSettings.from_mapping(_settings("ENGINE_NEO4J"))
    model = SourceModel.from_mapping(_settings("ENGINE_SOURCE"))
    driver = neo4j.GraphDatabase.driver(settings.uri, auth=(settings.user, settings.password))
    return driver, settings, model


def pool_of_ids(size: int, dimension: int) -> list[str]:
    """Existing, valid seeded items to update and search (bad records are left as they are)."""
    driver, settings, model = _neo4j()
    label, key = quote_identifier(model.label), quote_identifier(model.id_property)
    embedding = quote_identifier(model.embedding_property)
    with driver:
        records, _, _ = driver.execute_query(
            f"MATCH (m:{label}) WHERE m.{key} STARTS WITH 'media-' AND size(m.{embedding}) = $dimension "
            f"RETURN m.{key} AS id ORDER BY id LIMIT $size",
            {"size": size, "dimension": dimension},
            database_=settings.database,
        )
    return [record["id"] for record in records]


def last_writes(journal: Path) -> dict[str, dict[str, Any]]:
    """The last acknowledged write of every id (writes to one id never overlap, so ack order is final order)."""
    latest: dict[str, dict[str, Any]] = {}
    with journal.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                entry = json.loads(line)
                if entry["id"] not in latest or entry["updated_at"] >= latest[entry["id"]]["updated_at"]:
                    latest[entry["id"]] = entry
    return latest


def verify(journal: Path, run_seed: int, dimension: int, milvus: bool, tolerance: float = 1e-5) -> dict[str, Any]:
    """Compare the last acknowledged write of each id with Neo4j and, optionally, Milvus."""
    latest = last_writes(journal)
    ids = list(latest)
    driver, settings, model = _neo4j()
    label, key = quote_identifier(model.label), quote_identifier(model.id_property)
    embedding = quote_identifier(model.embedding_property)
    stored: dict[str, np.ndarray] = {}
    with driver:
        for start in range(0, len(ids), 1000):
            records, _, _ = driver.execute_query(
                f"UNWIND $ids AS wanted MATCH (m:{label} {{{key}: wanted}}) RETURN m.{key} AS id, m.{embedding} AS e",
                {"ids": ids[start : start + 1000]},
                database_=settings.database,
            )
            stored.update({r["id"]: np.asarray(r["e"], dtype=np.float32) for r in records if r["e"] is not None})
    result: dict[str, Any] = {"acknowledged_writes": sum(1 for _ in journal.open()), "ids": len(ids)}
    expected = {
        item_id: np.asarray(load_vector(run_seed, entry["n"], dimension), dtype=np.float32)
        for item_id, entry in latest.items()
    }
    result["neo4j"] = _compare(expected, stored, tolerance)
    if milvus:
        from hybrid_migration.connections import open_milvus
        from hybrid_migration.milvus_reader import MilvusRows

        client = open_milvus(MilvusSettings.from_mapping(_settings("ENGINE_MILVUS")))
        rows = MilvusRows(client, os.environ.get("ENGINE_COLLECTION", "media_embeddings"))
        result["milvus"] = _compare(expected, rows.vectors(ids), tolerance)
    return result


def _compare(expected: dict[str, np.ndarray], stored: dict[str, np.ndarray], tolerance: float) -> dict[str, Any]:
    missing = [item_id for item_id in expected if item_id not in stored]
    different = [
        item_id
        for item_id, vector in expected.items()
        if item_id in stored and float(np.linalg.norm(stored[item_id] - vector)) >= tolerance
    ]
    return {"missing": len(missing), "different": len(different), "samples": (missing + different)[:10]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reference_engine.load", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("--endpoint", action="append", required=True)
    run.add_argument("--writes-per-second", type=float, default=100)
    run.add_argument("--searches-per-second", type=float, default=100)
    run.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until stopped")
    run.add_argument("--stop-file", type=Path)
    run.add_argument("--journal", type=Path, required=True)
    run.add_argument("--summary", type=Path, required=True)
    run.add_argument("--run-seed", type=int, default=int(time.time()))
    run.add_argument("--dimension", type=int, default=768)
    run.add_argument("--pool-size", type=int, default=5000)
    run.add_argument(
        "--new-item-share",
        type=float,
        default=0.1,
        help="share of writes that create a media item; the others update existing ones",
    )
    run.add_argument("--workers", type=int, default=64)
    check = commands.add_parser("verify")
    check.add_argument("--journal", type=Path, required=True)
    check.add_argument("--summary", type=Path, required=True, help="the run's summary (gives its seed)")
    check.add_argument("--milvus", action="store_true")
    check.add_argument("--output", type=Path)
    arguments = parser.parse_args(argv)
    if arguments.command == "verify":
        summary = json.loads(arguments.summary.read_text())
        result = verify(arguments.journal, summary["run_seed"], summary["dimension"], arguments.milvus)
        text = json.dumps(result, indent=2)
        if arguments.output:
            arguments.output.write_text(text + "\n")
        print(text)
        lost = result["neo4j"]["missing"] + result["neo4j"]["different"]
        if arguments.milvus:
            lost += result["milvus"]["missing"] + result["milvus"]["different"]
        return 1 if lost else 0
    load = LoadRun(arguments, pool_of_ids(arguments.pool_size, arguments.dimension))
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    signal.signal(signal.SIGINT, lambda *_: load.stop.set())
    arguments.summary.parent.mkdir(parents=True, exist_ok=True)
    summary = {"run_seed": arguments.run_seed, "dimension": arguments.dimension, **load.run()}
    arguments.summary.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({key: summary[key] for key in ("seconds", "requests", "failed", "slowest")}))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
