"""What every benchmark needs from the sandbox: connections, seeding, idle servers, peak memory, and
its own section of RESULTS.md."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import _paths  # noqa: F401 - import path set-up
import psutil
from ansible.module_utils.hybrid_migration.connections import open_milvus, open_neo4j, open_redis
from ansible.module_utils.hybrid_migration.seed import SeedPlan, seed_sandbox
from ansible.module_utils.hybrid_migration.settings import MilvusSettings, Neo4jSettings, RedisSettings, SourceModel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"


def neo4j_settings() -> Neo4jSettings:
    return Neo4jSettings.from_mapping({"password": os.environ.get("NEO4J_PASSWORD", "sandbox-neo4j-secret")})


def connect():
    """The sandbox's Neo4j driver and Milvus client."""
    return open_neo4j(neo4j_settings()), open_milvus(MilvusSettings(timeout=60))


def seed(driver, count: int, dimensions: int) -> float:
    """Replace the sandbox data with ``count`` media of ``dimensions``; returns the seconds it took."""
    redis_client = open_redis(
        RedisSettings.from_mapping({"password": os.environ.get("REDIS_PASSWORD", "sandbox-redis-secret")})
    )
    plan = SeedPlan(
        media_count=count, dimensions=dimensions, user_count=100, watched_per_user=5,
        similar_per_media=1, agent_count=2, experiences_per_agent=10, qvalues_per_agent=10,
    )  # fmt: skip
    started = time.perf_counter()
    seed_sandbox(driver, "neo4j", redis_client, "agentdb:", SourceModel(), plan, False, False, replace_other_data=True)
    seconds = time.perf_counter() - started
    print(f"seeded {count} in {seconds:.0f}s", flush=True)
    return seconds


def server_processes() -> list[psutil.Process]:
    """Neo4j and Milvus of the sandbox, with their children."""
    found = []
    for pidfile in (ROOT / ".sandbox" / "neo4j" / "neo4j.pid", ROOT / ".sandbox" / "milvus.pid"):
        leader = psutil.Process(json.loads(pidfile.read_text())["pid"])
        found += [leader, *leader.children(recursive=True)]
    return found


def settle(limit: float = 90.0) -> float:
    """Wait until Neo4j and Milvus are idle (background index builds, compaction), so that no
    measurement pays for the work of the one before. Returns the seconds waited."""
    started = time.monotonic()
    processes = server_processes()
    quiet = 0
    while time.monotonic() - started < limit and quiet < 3:
        before = sum(sum(p.cpu_times()[:2]) for p in processes)
        time.sleep(1)
        busy = sum(sum(p.cpu_times()[:2]) for p in processes) - before
        quiet = quiet + 1 if busy < 0.15 else 0
    return time.monotonic() - started


def wait_for_index(client, collection: str, limit: float = 1800.0) -> float:
    """Seal the collection's segments and wait until Milvus has indexed every row and gone quiet.

    After a large write Milvus builds HNSW for each sealed segment, then compacts the segments and
    builds the index of the merged one again, on both cores, for minutes. Returns the seconds waited.
    """
    started = time.monotonic()
    client.flush(collection)
    index = client.list_indexes(collection)[0]
    quiet_checks = 0
    while time.monotonic() - started < limit and quiet_checks < 3:
        state = client.describe_index(collection, index)
        pending = int(state.get("pending_index_rows", 0)) or state.get("state") != "Finished"
        quiet_checks = 0 if pending else quiet_checks + 1
        if not pending:
            settle(limit=60)
        time.sleep(5)
    return time.monotonic() - started


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own high-water RSS (VmHWM), this one's by default; rusage would count the parent's
    image before exec."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Put one benchmark's section into RESULTS.md between its markers, leaving the others as they are."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _match: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text.rstrip() + "\n")
