"""Benchmark of the zero-downtime path: flips under an open-loop load, against the raw server speed.

Runs the molecule scenario ``zero_downtime`` (neo4j_only -> dual_write -> copy -> validate ->
shadow -> hybrid -> rollback -> forward again to hybrid, both sandbox engine instances serving the
load throughout) at the given rates, then measures, in the same run and with the engines idle,
the raw speed of the servers behind them: Neo4j vector searches and Neo4j writes of the engine's
own shape, and Milvus searches. For each flip it records how long the slowest instance took to
acknowledge it and the slowest request due while the flip was under way (up to a second after it).
Writes its section of bench/RESULTS.md (one per pair of rates) and bench/zero-downtime-results-<rates>.json.

    make sandbox && .venv/bin/python bench/zero_downtime_bench.py
    .venv/bin/python bench/zero_downtime_bench.py --writes-per-second 50 --searches-per-second 50
    .venv/bin/python bench/zero_downtime_bench.py --skip-run   # report the last run again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
from _sandbox import HERE, ROOT, neo4j_settings, peak_rss_mb, settle, write_section
from ansible.module_utils.hybrid_migration.settings import MilvusSettings, SourceModel

from reference_engine.stores import MilvusStore, Neo4jStore

STATE = ROOT / ".sandbox" / "state"
TARGET_MS = 1000


def run_scenario(writes: float, searches: float) -> tuple[int, float]:
    """The molecule scenario at the given rates; returns its exit status and its seconds."""
    environment = {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ZERO_DOWNTIME_WRITES_PER_SECOND": str(writes),
        "ZERO_DOWNTIME_SEARCHES_PER_SECOND": str(searches),
    }
    started = time.monotonic()
    log = STATE / "zero-downtime-molecule.log"
    with log.open("w") as output:
        # The controller at the lowest CPU priority: in production Ansible runs on a laptop or in AWX,
        # not on the 2 cores that serve, and here it would otherwise take ~40% of them.
        status = subprocess.call(
            ["nice", "-n", "19", str(ROOT / ".venv" / "bin" / "molecule"), "test", "-s", "zero_downtime"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    print(f"molecule test -s zero_downtime: exit {status}, log {log}", flush=True)
    return status, time.monotonic() - started


def per_flip(flips: list[dict[str, Any]], by_second: dict[str, float]) -> list[dict[str, Any]]:
    """Each flip's propagation and the slowest request due while it was under way (plus one second)."""
    rows = []
    for flip in flips:
        first = flip["started_epoch_ms"] // 1000
        last = (flip["started_epoch_ms"] + int((flip.get("seconds") or 0) * 1000)) // 1000 + 1
        during = [by_second[str(second)] for second in range(first, last + 1) if str(second) in by_second]
        rows.append(
            {
                "flip": f"{flip['from']} -> {flip['to']}",
                "phase": flip["phase"],
                "slowest_propagation_ms": flip["slowest_propagation_ms"],
                "instances": len(flip["acknowledged"]),
                "slowest_request_ms": max(during) if during else None,
            }
        )
    return rows


def rate(work: Callable[[int], None], threads: int, seconds: float) -> float:
    """Calls of ``work`` per second over ``threads`` threads calling it back to back."""
    done = [0] * threads
    stop = time.monotonic() + seconds

    def loop(index: int) -> None:
        number = index
        while time.monotonic() < stop:
            work(number)
            number += threads
            done[index] += 1

    workers = [threading.Thread(target=loop, args=(index,)) for index in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.monotonic() - started)


def raw_speeds(group_commit_rows: int, seconds: float) -> dict[str, float]:
    """The servers' own speed for the engine's requests, with nothing else running."""
    neo4j = Neo4jStore(neo4j_settings(), SourceModel())
    milvus = MilvusStore(MilvusSettings(timeout=30), "media_embeddings", search_ef=128, timeout=30)
    ids = [record["id"] for record in neo4j._query("MATCH (m:Media) WHERE m.embedding IS NOT NULL RETURN m.id AS id")]
    rows = neo4j.current(ids[:2000])
    vectors = [vector for _, vector, _ in rows]
    speeds = {}
    settle()
    speeds["neo4j_search"] = rate(lambda n: neo4j.similar(ids[n % len(ids)], 11, False), 8, seconds)
    settle()
    speeds["milvus_search"] = rate(lambda n: milvus.search(vectors[n % len(vectors)], 10), 8, seconds)
    settle()

    def write_batch(number: int) -> None:
        start = (number * group_commit_rows) % (len(rows) - group_commit_rows)
        neo4j.write_many(rows[start : start + group_commit_rows])

    speeds["neo4j_write"] = rate(write_batch, 2, seconds) * group_commit_rows
    neo4j.close()
    milvus.close()
    return speeds


def engine_peak_rss_mb() -> dict[str, float]:
    """High-water RSS (VmHWM) of each engine instance over its life, which spans the run."""
    return {
        pidfile.stem: peak_rss_mb(json.loads(pidfile.read_text())["pid"])
        for pidfile in sorted((ROOT / ".sandbox" / "engine").glob("*.pid"))
    }


def markdown(results: dict[str, Any]) -> str:
    load, raw = results["load"], results["raw"]
    lines = [
        f"## Zero-downtime flips under load: {results['writes_per_second']:g} writes/s"
        f" + {results['searches_per_second']:g} searches/s",
        "",
        f"Measured {results['date']} on this project's sandbox ({results['machine']}; Neo4j 5.26, Milvus 2.3.5",
        "standalone, PostgreSQL, two reference engine instances, the load tool and Ansible on the same machine), with",
        "",
        f"    {results['command']}",
        "",
        f"Molecule scenario `zero_downtime` ({results['scenario_seconds']:.0f} s, exit {results['scenario_exit']}):"
        " 3,000 media, an open-loop load of",
        f"{results['writes_per_second']:g} writes/s and {results['searches_per_second']:g} searches/s across both"
        " instances (latency counts from when a request was due),",
        "through neo4j_only -> dual_write -> copy -> validate -> shadow -> hybrid -> rollback -> dual_write ->",
        "catch-up -> validate -> shadow -> hybrid. Propagation is the time until the slowest instance acknowledged",
        "the flip through the control record; the slowest request is the slowest one due from the flip's start to",
        "one second after its end.",
        "",
        "| flip | phase | instances | propagation (ms) | slowest request (ms) |",
        "|---|---|---|---|---|",
    ]
    for flip in results["flips"]:
        slowest = "-" if flip["slowest_request_ms"] is None else f"{flip['slowest_request_ms']:,.0f}"
        propagation = flip["slowest_propagation_ms"]
        lines.append(f"| {flip['flip']} | {flip['phase']} | {flip['instances']} | {propagation:,.0f} | {slowest} |")
    writes, searches = load["writes"], load["searches"]
    p50 = max(writes["latency_ms"]["p50"], searches["latency_ms"]["p50"])
    p99 = max(writes["latency_ms"]["p99"], searches["latency_ms"]["p99"])
    offered_searches = results["searches_per_second"] / raw["neo4j_search"]
    offered_writes = results["writes_per_second"] / raw["neo4j_write"]
    lines += [
        "",
        "| requests | failed | served writes/s | served searches/s | p50 (ms) | p99 (ms) | slowest (ms) | backlog |",
        "|---|---|---|---|---|---|---|---|",
        f"| {load['requests']:,} | {load['failed']} | {writes['ok'] / load['seconds']:.1f} |"
        f" {searches['ok'] / load['seconds']:.1f} | {p50:,.0f} | {p99:,.0f} | {load['slowest']['ms']:,.0f} |"
        f" {load.get('backlog_at_stop', 0)} |",
        "",
        f"Acknowledged writes checked afterwards: {results['verify'].get('acknowledged_writes', 0):,};"
        f" missing or different in Neo4j {results['lost_neo4j']}, in Milvus {results['lost_milvus']}.",
        "",
        "Raw speed of the servers in the same run, engines idle (8 client threads for searches, 2 for writes of"
        f" {results['group_commit_rows']} rows per transaction, the engine's group commit at this rate):",
        "",
        "| Neo4j search (/s) | Milvus search (/s) | Neo4j writes (/s) | offered/raw searches | offered/raw writes |",
        "|---|---|---|---|---|",
        f"| {raw['neo4j_search']:,.0f} | {raw['milvus_search']:,.0f} | {raw['neo4j_write']:,.0f} |"
        f" {offered_searches:.2f} | {offered_writes:.2f} |",
        "",
        "Peak RSS (VmHWM): "
        + ", ".join(f"{name} {mb:.0f} MB" for name, mb in results["engine_peak_rss_mb"].items())
        + f", load tool {load.get('peak_rss_mb', 0):.0f} MB.",
        "",
        f"Targets (issue 5): every flip acknowledged by all instances within {TARGET_MS} ms, no request slower than"
        f" {TARGET_MS} ms during a flip, at 100 writes/s and 100 searches/s.",
    ]
    return "\n".join(lines) + "\n\n" + results.get("notes", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes-per-second", type=float, default=100)
    parser.add_argument("--searches-per-second", type=float, default=100)
    parser.add_argument("--raw-seconds", type=float, default=15)
    parser.add_argument("--group-commit-seconds", type=float, default=0.25)
    parser.add_argument("--skip-run", action="store_true", help="report the artifacts of the last run")
    parser.add_argument("--notes", default="", help="text added under the tables")
    args = parser.parse_args()

    status, seconds = (0, 0.0) if args.skip_run else run_scenario(args.writes_per_second, args.searches_per_second)
    load = json.loads((STATE / "load" / "summary.json").read_text())
    verify_file = STATE / "load" / "verify.json"
    verify = json.loads(verify_file.read_text()) if verify_file.exists() else {}
    flips = [json.loads(line) for line in (STATE / "mode-flips.jsonl").read_text().splitlines() if line.strip()]
    flips = [flip for flip in flips if flip["started_epoch_ms"] >= load["started_epoch_ms"]]
    group_commit_rows = max(1, round(args.writes_per_second * args.group_commit_seconds / 2))
    results = {
        "command": " ".join([".venv/bin/python", "bench/zero_downtime_bench.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()},"
        f" {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "writes_per_second": args.writes_per_second,
        "searches_per_second": args.searches_per_second,
        "scenario_exit": status,
        "scenario_seconds": seconds,
        "flips": per_flip(flips, load["max_latency_ms_by_second"]),
        "load": {key: value for key, value in load.items() if key != "max_latency_ms_by_second"},
        "verify": verify,
        "lost_neo4j": sum(verify.get("neo4j", {}).get(key, 0) for key in ("missing", "different")),
        "lost_milvus": sum(verify.get("milvus", {}).get(key, 0) for key in ("missing", "different")),
        "engine_peak_rss_mb": engine_peak_rss_mb(),
        "group_commit_rows": group_commit_rows,
        "raw": raw_speeds(group_commit_rows, args.raw_seconds),
        "notes": args.notes,
    }
    rates = f"{args.writes_per_second:g}w-{args.searches_per_second:g}s"
    (HERE / f"zero-downtime-results-{rates}.json").write_text(json.dumps(results, indent=2) + "\n")
    write_section(f"zero_downtime_{rates}", markdown(results))
    print(json.dumps({key: results[key] for key in ("flips", "raw", "scenario_exit")}, indent=2))


if __name__ == "__main__":
    main()
