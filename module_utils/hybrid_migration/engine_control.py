"""The live control record: which storage mode the engine fleet serves, and who has heard.

The record lives in PostgreSQL (two small tables in their own schema). Every engine
instance polls it, applies a change without restarting and acknowledges it with the
generation it now serves; the flip waits for those acknowledgements and puts the previous
mode back when one does not come. Both sides use this module, so the engine and the runbook
cannot disagree about the contract.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import TerminalError

if TYPE_CHECKING:
    import psycopg

MODES = ("neo4j_only", "dual_write", "shadow", "hybrid")
# Where vector searches are answered from in each mode.
READ_SOURCE = {"neo4j_only": "neo4j", "dual_write": "neo4j", "shadow": "neo4j", "hybrid": "milvus"}
# Modes in which every write also goes to Milvus.
WRITES_TO_MILVUS = frozenset({"dual_write", "shadow", "hybrid"})
DEFAULT_FLEET = "recommendation-engine"
DEFAULT_SCHEMA = "migration_control"


def check_mode_name(mode: str) -> str:
    """Return ``mode`` if it is one of MODES.

    Raises:
        TerminalError: it is not.
    """
    if mode not in MODES:
        raise TerminalError(f"unknown storage mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode


def config_digest(text: str) -> str:
    """What an instance on the config-file path reports, so a flip can tell it applied exactly this file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def skipped_modes(current: str, target: str) -> list[str]:
    """Modes a forward flip would jump over (neo4j_only -> hybrid skips dual_write and shadow).

    Going back (rollback, or one step down) skips nothing that matters: writes keep reaching Neo4j.
    """
    start, end = MODES.index(current), MODES.index(target)
    return list(MODES[start + 1 : end]) if end > start + 1 else []


@dataclass(frozen=True)
class ModeRecord:
    """The fleet's desired mode and its generation (bumped on every change)."""

    mode: str = "neo4j_only"
    generation: int = 0
    previous_mode: str | None = None
    changed_at: datetime | None = None
    changed_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "generation": self.generation,
            "previous_mode": self.previous_mode,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "changed_by": self.changed_by,
        }


@dataclass(frozen=True)
class InstanceState:
    """What one engine instance last reported."""

    instance_id: str
    address: str | None
    mode: str | None
    generation: int | None
    acknowledged_at: datetime | None
    heartbeat_age_seconds: float
    live: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "address": self.address,
            "mode": self.mode,
            "generation": self.generation,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
            "heartbeat_age_seconds": round(self.heartbeat_age_seconds, 3),
            "live": self.live,
        }


class ControlRecord:
    """Reads and writes the control record of one fleet.

    Args:
        connect: returns a new autocommit PostgreSQL connection (reconnects go through it).
        schema: schema holding the two tables.
        fleet: name of the engine fleet; several fleets may share a schema.
    """

    def __init__(
        self,
        connect: Callable[[], "psycopg.Connection[Any]"],
        schema: str = DEFAULT_SCHEMA,
        fleet: str = DEFAULT_FLEET,
    ) -> None:
        self._connect = connect
        self._connection: psycopg.Connection[Any] | None = None
        self.schema = schema
        self.fleet = fleet

    def _execute(self, template: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run ``template`` with ``{schema}`` quoted as an identifier; reconnect once if the connection broke."""
        import psycopg
        from psycopg import sql

        statement = sql.SQL(template).format(schema=sql.Identifier(self.schema))  # type: ignore[arg-type]

        for attempt in (1, 2):
            if self._connection is None or self._connection.closed:
                self._connection = self._connect()
            try:
                with self._connection.cursor() as cursor:
                    cursor.execute(statement, parameters)
                    return cursor.fetchall() if cursor.description else []
            except psycopg.OperationalError:
                self.close()
                if attempt == 2:
                    raise
        return []

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def exists(self) -> bool:
        rows = self._execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}".engine_instances',))
        return bool(rows[0][0])

    def ensure_schema(self) -> bool:
        """Create the schema and tables if missing, in one transaction; return whether anything was created."""
        if self.exists():
            return False
        from psycopg import sql

        statements = [
            "SELECT pg_advisory_xact_lock(hashtext('hybrid_migration control record'))",
            "CREATE SCHEMA IF NOT EXISTS {schema}",
            "CREATE TABLE IF NOT EXISTS {schema}.storage_mode ("
            " fleet text PRIMARY KEY,"
            " mode text NOT NULL CHECK (mode IN (" + ", ".join(f"'{m}'" for m in MODES) + ")),"
            " generation bigint NOT NULL,"
            " previous_mode text,"
            " changed_at timestamptz NOT NULL DEFAULT now(),"
            " changed_by text)",
            "CREATE TABLE IF NOT EXISTS {schema}.engine_instances ("
            " fleet text NOT NULL,"
            " instance_id text NOT NULL,"
            " address text,"
            " mode text,"
            " generation bigint,"
            " acknowledged_at timestamptz,"
            " heartbeat_at timestamptz NOT NULL DEFAULT now(),"
            " started_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (fleet, instance_id))",
        ]
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
        with self._connection.transaction(), self._connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(sql.SQL(statement).format(schema=sql.Identifier(self.schema)))  # type: ignore[arg-type]
        return True

    def current(self) -> ModeRecord:
        """The desired mode; a fleet never flipped serves neo4j_only at generation 0."""
        if not self.exists():
            return ModeRecord()
        rows = self._execute(
            "SELECT mode, generation, previous_mode, changed_at, changed_by FROM {schema}.storage_mode "
            "WHERE fleet = %s",
            (self.fleet,),
        )
        return ModeRecord(*rows[0]) if rows else ModeRecord()

    def set_mode(self, mode: str, changed_by: str) -> ModeRecord:
        """Write a new desired mode with the next generation, atomically."""
        check_mode_name(mode)
        self.ensure_schema()
        rows = self._execute(
            "INSERT INTO {schema}.storage_mode AS s (fleet, mode, generation, previous_mode, changed_by) "
            "VALUES (%s, %s, 1, 'neo4j_only', %s) "
            "ON CONFLICT (fleet) DO UPDATE SET mode = EXCLUDED.mode, generation = s.generation + 1, "
            "previous_mode = s.mode, changed_at = now(), changed_by = EXCLUDED.changed_by "
            "RETURNING mode, generation, previous_mode, changed_at, changed_by",
            (self.fleet, mode, changed_by),
        )
        return ModeRecord(*rows[0])

    def instances(self, liveness_seconds: float) -> list[InstanceState]:
        """Every registered instance, live when its heartbeat is younger than ``liveness_seconds``."""
        if not self.exists():
            return []
        rows = self._execute(
            "SELECT instance_id, address, mode, generation, acknowledged_at, "
            "extract(epoch FROM now() - heartbeat_at)::float8 "
            "FROM {schema}.engine_instances WHERE fleet = %s ORDER BY instance_id",
            (self.fleet,),
        )
        return [InstanceState(*row[:5], max(row[5], 0.0), live=row[5] < liveness_seconds) for row in rows]

    # The engine's side

    def register(self, instance_id: str, address: str | None) -> None:
        self.ensure_schema()
        self._execute(
            "INSERT INTO {schema}.engine_instances (fleet, instance_id, address) VALUES (%s, %s, %s) "
            "ON CONFLICT (fleet, instance_id) DO UPDATE SET address = EXCLUDED.address, mode = NULL, "
            "generation = NULL, acknowledged_at = NULL, heartbeat_at = now(), started_at = now()",
            (self.fleet, instance_id, address),
        )

    def acknowledge(self, instance_id: str, mode: str, generation: int) -> None:
        self._execute(
            "UPDATE {schema}.engine_instances SET mode = %s, generation = %s, acknowledged_at = now(), "
            "heartbeat_at = now() WHERE fleet = %s AND instance_id = %s",
            (mode, generation, self.fleet, instance_id),
        )

    def heartbeat(self, instance_id: str) -> bool:
        """Record that the instance is alive; False when its row is gone (the schema was reset)."""
        rows = self._execute(
            "UPDATE {schema}.engine_instances SET heartbeat_at = now() WHERE fleet = %s AND instance_id = %s "
            "RETURNING instance_id",
            (self.fleet, instance_id),
        )
        return bool(rows)

    def deregister(self, instance_id: str) -> None:
        self._execute(
            "DELETE FROM {schema}.engine_instances WHERE fleet = %s AND instance_id = %s",
            (self.fleet, instance_id),
        )


@dataclass
class Acknowledgements:
    """Who served a generation, who did not, and how long each took."""

    generation: int
    mode: str
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.waiting

    @property
    def slowest_propagation_ms(self) -> float:
        return max((item["propagation_ms"] for item in self.acknowledged), default=0.0)


def acknowledgements(record: ModeRecord, instances: list[InstanceState]) -> Acknowledgements:
    """Split live instances into those serving ``record`` and those not yet (pure)."""
    result = Acknowledgements(generation=record.generation, mode=record.mode)
    for instance in instances:
        if not instance.live:
            continue
        if (
            instance.generation is not None
            and instance.generation >= record.generation
            and (instance.mode == record.mode)
        ):
            took = (
                (instance.acknowledged_at - record.changed_at).total_seconds() * 1000
                if instance.acknowledged_at and record.changed_at
                else 0.0
            )
            result.acknowledged.append(
                {"instance_id": instance.instance_id, "address": instance.address, "propagation_ms": round(took, 1)}
            )
        else:
            result.waiting.append(instance.instance_id)
    return result


def wait_for_acknowledgements(
    control: ControlRecord,
    record: ModeRecord,
    timeout: float,
    liveness_seconds: float,
    poll_interval: float = 0.05,
) -> Acknowledgements:
    """Poll until every live instance serves ``record`` or ``timeout`` passes."""
    started = time.monotonic()
    while True:
        state = acknowledgements(record, control.instances(liveness_seconds))
        state.seconds = round(time.monotonic() - started, 3)
        if state.complete or state.seconds >= timeout:
            return state
        time.sleep(poll_interval)


def live_addresses(control: ControlRecord, liveness_seconds: float) -> list[str]:
    """Base URLs the live instances registered, for metrics and read checks."""
    return [i.address for i in control.instances(liveness_seconds) if i.live and i.address]


def fleet_endpoints(
    explicit: list[str],
    connect: Callable[[], "psycopg.Connection[Any]"] | None,
    schema: str,
    fleet: str,
    liveness_seconds: float,
) -> list[str]:
    """The engine URLs to ask: the ones given, else those the live instances registered.

    Raises:
        TerminalError: neither is available.
    """
    if explicit:
        return explicit
    if connect is None:
        raise TerminalError("give engine endpoints, or the postgres connection of the control record to find them")
    control = ControlRecord(connect, schema, fleet)
    try:
        found = live_addresses(control, liveness_seconds)
    finally:
        control.close()
    if not found:
        raise TerminalError(f"no live instance of fleet {fleet!r} is registered in the control record")
    return found
