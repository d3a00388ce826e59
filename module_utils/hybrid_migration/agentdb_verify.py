"""Verification: per agent, row counts and a checksum of the values, Redis against PostgreSQL.

Redis is read again through the same parsers as the copy, so rejected records
count on neither side. Each row's values are put in one canonical form on both
sides (floats by their shortest repr, JSON as parsed values, times as UTC) and
hashed; an agent's checksum is the sum of its rows' hashes modulo 2^64, so the
order rows come back in does not matter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from .agentdb_records import (
    agent_values,
    canonical_json,
    datetime_to_ms,
    experience_values,
    policy_values,
    qvalue_values,
    row_digest,
)
from .agentdb_schema import quote_identifier
from .agentdb_source import RedisAgentSource

MASK = 2**64 - 1
TABLE_NAMES = ("agents", "q_values", "policies", "experiences")
MISMATCH_LIMIT = 20


@dataclass
class Tally:
    """Counts and checksums per agent for one side."""

    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    sums: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def add(self, table: str, agent_id: str, values: tuple[Any, ...]) -> None:
        self.counts[agent_id][table] += 1
        self.sums[agent_id][table] = (self.sums[agent_id][table] + row_digest(values)) & MASK

    def totals(self, table: str) -> tuple[int, int]:
        count = sum(per_agent.get(table, 0) for per_agent in self.counts.values())
        checksum = sum(per_agent.get(table, 0) for per_agent in self.sums.values()) & MASK
        return count, checksum


def tally_redis(
    source: RedisAgentSource,
    agent_ids: Iterable[str],
    include_history: bool,
    batch_size: int,
    on_agent: Callable[[str, Any], None] | None = None,
    refused: set[str] | None = None,
) -> Tally:
    """What PostgreSQL should hold for these agents.

    ``refused`` names records PostgreSQL refused during the copy (by the key of the reject file): they
    are rejected, so they are not expected in PostgreSQL.
    """
    tally = Tally()
    refused = refused or set()
    for agent_id in agent_ids:
        head = source.head(agent_id)
        if on_agent:
            on_agent(agent_id, head)
        keys = source.layout.agent_keys(agent_id)
        if head.agent is None or keys["agent"] in refused:
            continue
        tally.add("agents", agent_id, agent_values(head.agent))
        for qvalue in head.qvalues:
            if f"{keys['qvalues']} {qvalue.state}|{qvalue.action}" not in refused:
                tally.add("q_values", agent_id, qvalue_values(qvalue))
        if head.policy is not None and keys["policy"] not in refused:
            tally.add("policies", agent_id, policy_values(head.policy))
        if include_history and head.has_experiences:
            for rows, rejects, _last in source.experiences(agent_id, head.experiences_key, "", batch_size):
                if on_agent:
                    on_agent(agent_id, rejects)
                for row in rows:
                    if not refused or f"{keys['experiences']} {row.entry_id}" not in refused:
                        tally.add("experiences", agent_id, experience_values(row))
    return tally


def _json(value: Any) -> Any:
    return None if value is None else canonical_json(value)


def _utc(moment: Any) -> str:
    return moment.astimezone(UTC).isoformat()


# Each reads a PostgreSQL row into the same canonical tuple as the *_values function of agentdb_records.
POSTGRES_QUERIES: dict[str, tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]]] = {
    "agents": (
        "SELECT agent_id, name, kind, version, created_at, config, extra FROM {schema}.agents",
        lambda r: (r[0], r[1], r[2], r[3], _utc(r[4]), _json(r[5]), _json(r[6])),
    ),
    "q_values": (
        "SELECT agent_id, state, action, value FROM {schema}.q_values",
        lambda r: (r[0], r[1], r[2], repr(r[3])),
    ),
    "policies": (
        "SELECT agent_id, version, epsilon, temperature, weights, updated_at, document FROM {schema}.policies",
        lambda r: (r[0], r[1], repr(r[2]), repr(r[3]), [repr(w) for w in r[4]], datetime_to_ms(r[5]), _json(r[6])),
    ),
    "experiences": (
        "SELECT agent_id, entry_id, state, action, reward, next_state, done, ts, extra FROM {schema}.experiences",
        lambda r: (r[0], r[1], _json(r[2]), r[3], repr(r[4]), _json(r[5]), r[6], datetime_to_ms(r[7]), _json(r[8])),
    ),
}


def tally_postgres(connection: Any, schema: str, include_history: bool) -> Tally:
    """What PostgreSQL holds, read through a server-side cursor per table."""
    tally = Tally()
    quoted = quote_identifier(schema)
    for table in TABLE_NAMES:
        if table == "experiences" and not include_history:
            continue
        query, values = POSTGRES_QUERIES[table]
        with connection.cursor(name=f"verify_{table}") as cursor:
            cursor.itersize = 5000
            cursor.execute(query.format(schema=quoted))
            for row in cursor:
                tally.add(table, row[0], values(row))
        connection.commit()
    return tally


def compare(redis: Tally, postgres: Tally, include_history: bool) -> dict[str, Any]:
    """The verification result: totals and checksums per table, and the agents that differ."""
    tables = [t for t in TABLE_NAMES if include_history or t != "experiences"]
    agents = sorted(set(redis.counts) | set(postgres.counts))
    mismatched = []
    for agent_id in agents:
        differences = {}
        for table in tables:
            left = (redis.counts[agent_id].get(table, 0), redis.sums[agent_id].get(table, 0))
            right = (postgres.counts[agent_id].get(table, 0), postgres.sums[agent_id].get(table, 0))
            if left != right:
                differences[table] = {
                    "redis_rows": left[0],
                    "postgres_rows": right[0],
                    "redis_checksum": f"{left[1]:016x}",
                    "postgres_checksum": f"{right[1]:016x}",
                }
        if differences:
            mismatched.append({"agent": agent_id, "tables": differences})
    summary: dict[str, Any] = {}
    for table in tables:
        redis_rows, redis_sum = redis.totals(table)
        postgres_rows, postgres_sum = postgres.totals(table)
        summary[table] = {
            "redis_rows": redis_rows,
            "postgres_rows": postgres_rows,
            "redis_checksum": f"{redis_sum:016x}",
            "postgres_checksum": f"{postgres_sum:016x}",
            "equal": redis_rows == postgres_rows and redis_sum == postgres_sum,
        }
    only_in_postgres = sorted(set(postgres.counts) - set(redis.counts))
    return {
        "equal": not mismatched,
        "agents_compared": len(agents),
        "agents_equal": len(agents) - len(mismatched),
        "agents_different": len(mismatched),
        "tables": summary,
        "skipped_tables": [] if include_history else ["experiences"],
        "only_in_postgres": only_in_postgres[:MISMATCH_LIMIT],
        "mismatched": mismatched[:MISMATCH_LIMIT],
    }


def per_agent(redis: Tally, postgres: Tally, include_history: bool) -> dict[str, Any]:
    """Every agent's counts and checksums on both sides, for the verification file."""
    tables = [t for t in TABLE_NAMES if include_history or t != "experiences"]
    agents = sorted(set(redis.counts) | set(postgres.counts))
    return {
        agent_id: {
            table: {
                "redis_rows": redis.counts[agent_id].get(table, 0),
                "postgres_rows": postgres.counts[agent_id].get(table, 0),
                "redis_checksum": f"{redis.sums[agent_id].get(table, 0):016x}",
                "postgres_checksum": f"{postgres.sums[agent_id].get(table, 0):016x}",
            }
            for table in tables
        }
        for agent_id in agents
    }
