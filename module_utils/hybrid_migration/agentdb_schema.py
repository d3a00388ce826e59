"""The versioned DDL of the AgentDB schema in PostgreSQL.

Each version is applied once, in order, in one transaction with its row in
``schema_version``, under an advisory lock so two runs cannot race. A later
change to the tables is a new version appended to ``MIGRATIONS``, never an
edit of an applied one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ADVISORY_LOCK = 0x6167656E7464  # "agentd": one schema change at a time per database


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    description: str
    statements: tuple[str, ...]


def migrations(schema: str) -> list[SchemaVersion]:
    """Every version of the schema, oldest first."""
    s = schema
    return [
        SchemaVersion(
            1,
            "agents, q_values, policies and experiences",
            (
                f"""CREATE TABLE {s}.agents (
                    agent_id    text PRIMARY KEY,
                    name        text NOT NULL,
                    kind        text NOT NULL,
                    version     text NOT NULL,
                    created_at  timestamptz NOT NULL,
                    config      jsonb NOT NULL,
                    extra       jsonb,
                    migrated_at timestamptz NOT NULL DEFAULT now()
                )""",
                f"""CREATE TABLE {s}.q_values (
                    agent_id text NOT NULL REFERENCES {s}.agents (agent_id) ON DELETE CASCADE,
                    state    text NOT NULL,
                    action   text NOT NULL,
                    value    double precision NOT NULL,
                    PRIMARY KEY (agent_id, state, action)
                )""",
                f"""CREATE TABLE {s}.policies (
                    agent_id    text PRIMARY KEY REFERENCES {s}.agents (agent_id) ON DELETE CASCADE,
                    version     integer NOT NULL,
                    epsilon     double precision NOT NULL,
                    temperature double precision NOT NULL,
                    weights     double precision[] NOT NULL,
                    updated_at  timestamptz NOT NULL,
                    document    jsonb NOT NULL
                )""",
                f"""CREATE TABLE {s}.experiences (
                    agent_id   text NOT NULL REFERENCES {s}.agents (agent_id) ON DELETE CASCADE,
                    entry_id   text NOT NULL,
                    state      jsonb NOT NULL,
                    action     text NOT NULL,
                    reward     double precision NOT NULL,
                    next_state jsonb NOT NULL,
                    done       boolean NOT NULL,
                    ts         timestamptz NOT NULL,
                    extra      jsonb,
                    PRIMARY KEY (agent_id, entry_id)
                )""",
                f"CREATE INDEX experiences_agent_ts ON {s}.experiences (agent_id, ts)",
            ),
        ),
    ]


@dataclass
class SchemaResult:
    schema: str
    current_version: int = 0
    target_version: int = 0
    applied: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_schema(connection: Any, schema: str, check_mode: bool) -> SchemaResult:
    """Bring ``schema`` to the newest version; in check mode only say which versions would apply."""
    quoted = quote_identifier(schema)
    versions = migrations(quoted)
    result = SchemaResult(schema=schema, target_version=versions[-1].version)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{quoted}.schema_version",))
        exists = cursor.fetchone()[0]
        if not check_mode:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {quoted}.schema_version ("
                "version integer PRIMARY KEY, description text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            exists = True
        applied: set[int] = set()
        if exists:
            cursor.execute(f"SELECT version FROM {quoted}.schema_version")  # noqa: S608 - quoted identifier
            applied = {row[0] for row in cursor.fetchall()}
        result.current_version = max(applied, default=0)
        for version in versions:
            if version.version in applied:
                continue
            result.applied.append({"version": version.version, "description": version.description})
            result.changed = True
            if check_mode:
                continue
            for statement in version.statements:
                cursor.execute(statement)
            cursor.execute(
                f"INSERT INTO {quoted}.schema_version (version, description) VALUES (%s, %s)",  # noqa: S608
                (version.version, version.description),
            )
            result.current_version = version.version
    if check_mode:
        connection.rollback()
    else:
        connection.commit()
    return result
