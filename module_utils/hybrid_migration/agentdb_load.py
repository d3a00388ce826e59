"""Load: batches of AgentDB rows into PostgreSQL, by COPY, upserting through staging tables.

Each batch is one transaction. A batch of rows PostgreSQL does not hold yet (a
first copy) is COPY'd straight into the real tables, as fast as PostgreSQL
loads. A batch that meets a row already there (a resume replaying its last
second, a re-run, ``fresh_start``) is rolled back and loaded again through
temporary staging tables (no WAL) and ``INSERT ... SELECT ... ON CONFLICT DO
UPDATE``, touching only rows whose values differ; after such a batch the next
ones take that path until ``DIRECT_RETRY_BATCHES`` have gone by. Replaying a
batch after a crash changes nothing, and the count of changed rows tells a
re-run that had nothing to do. A batch PostgreSQL refuses as data is loaded
again row by row, so one bad row goes to the reject file instead of stopping
the copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .agentdb_records import RecordReject, snippet
from .agentdb_schema import quote_identifier
from .errors import TransientError
from .retry import RetryPolicy, with_retries


@dataclass(frozen=True)
class Column:
    """A staging column and how it becomes a target column."""

    staging: str
    staging_type: str
    target: str = ""
    expression: str = ""

    @property
    def target_name(self) -> str:
        return self.target or self.staging

    @property
    def select(self) -> str:
        return self.expression or self.staging


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]


DIRECT_RETRY_BATCHES = 50
"""Batches loaded through staging after one met an existing row, before a straight COPY is tried again."""


def _jsonb(name: str) -> Column:
    return Column(name, "text", name, f"{name}::jsonb")


TABLES = {
    "agents": Table(
        "agents",
        (
            Column("agent_id", "text"),
            Column("name", "text"),
            Column("kind", "text"),
            Column("version", "text"),
            Column("created_at", "timestamptz"),
            _jsonb("config"),
            _jsonb("extra"),
        ),
        ("agent_id",),
    ),
    "q_values": Table(
        "q_values",
        (Column("agent_id", "text"), Column("state", "text"), Column("action", "text"), Column("value", "float8")),
        ("agent_id", "state", "action"),
    ),
    "policies": Table(
        "policies",
        (
            Column("agent_id", "text"),
            Column("version", "integer"),
            Column("epsilon", "float8"),
            Column("temperature", "float8"),
            Column("weights", "float8[]"),
            Column("updated_at", "timestamptz"),
            _jsonb("document"),
        ),
        ("agent_id",),
    ),
    "experiences": Table(
        "experiences",
        (
            Column("agent_id", "text"),
            Column("entry_id", "text"),
            _jsonb("state"),
            Column("action", "text"),
            Column("reward", "float8"),
            _jsonb("next_state"),
            Column("done", "boolean"),
            Column("ts", "timestamptz"),
            _jsonb("extra"),
        ),
        ("agent_id", "entry_id"),
    ),
}
LOAD_ORDER = ("agents", "q_values", "policies", "experiences")


NULL = "\\N"
_SPECIAL = re.compile(r"[\\\t\n\r]")


def copy_text(value: str) -> str:
    """A text value in COPY's text format."""
    if _SPECIAL.search(value) is None:
        return value
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_EPOCH_DAY = date(1970, 1, 1)
_DAYS: dict[int, str] = {}
_CLOCK: list[str] = []


def copy_timestamp(epoch_ms: int) -> str:
    """Epoch milliseconds as timestamptz input in UTC, from cached day and time-of-day texts.

    Experiences are most of the data; formatting each time in full cost the reader a tenth of its time.
    """
    days, millis_of_day = divmod(epoch_ms, 86_400_000)
    day = _DAYS.get(days)
    if day is None:
        if len(_DAYS) > 100_000:
            _DAYS.clear()
        day = _DAYS[days] = (_EPOCH_DAY + timedelta(days=days)).isoformat()
    if not _CLOCK:
        _CLOCK.extend(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))
    seconds, millis = divmod(millis_of_day, 1000)
    return f"{day} {_CLOCK[seconds]}.{millis:03d}+00"


def copy_field(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "{" + ",".join(repr(float(item)) for item in value) + "}"
    return copy_text(value)


def encode_rows(table: str, rows: list[Any]) -> bytes:
    """Rows (NamedTuples in staging column order) as one COPY text payload, one line per row."""
    if table == "experiences":
        # The bulk of the data: the common shape without the generic per-field dispatch.
        lines = [
            f"{copy_text(r.agent_id)}\t{copy_text(r.entry_id)}\t{copy_text(r.state)}\t{copy_text(r.action)}\t"
            f"{r.reward!r}\t{copy_text(r.next_state)}\t{'t' if r.done else 'f'}\t{copy_timestamp(r.ts_ms)}\t"
            f"{NULL if r.extra is None else copy_text(r.extra)}"
            for r in rows
        ]
    elif table == "policies":
        lines = [
            "\t".join(
                copy_timestamp(value) if name == "updated_at_ms" else copy_field(value)
                for name, value in zip(row._fields, row, strict=True)
            )
            for row in rows
        ]
    else:
        lines = ["\t".join(copy_field(value) for value in row) for row in rows]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def decode_field(text: str) -> str | None:
    """A COPY text field back to its value (as text), for naming a refused row."""
    if text == NULL:
        return None
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text)


def row_key(table: str, line: bytes, keys_for: Callable[[str], dict[str, str]]) -> tuple[str, str]:
    """The Redis key (plus field or entry id) a COPY line came from, and its agent."""
    columns = [decode_field(part) or "" for part in line.decode().split("\t")]
    agent_id = columns[0]
    keys = keys_for(agent_id)
    if table == "agents":
        return keys["agent"], agent_id
    if table == "q_values":
        return f"{keys['qvalues']} {columns[1]}|{columns[2]}", agent_id
    if table == "policies":
        return keys["policy"], agent_id
    return f"{keys['experiences']} {columns[1]}", agent_id


class PostgresLoader:
    """Upserts batches into the AgentDB schema; reconnects and replays on transient failures."""

    def __init__(
        self,
        connect: Callable[[], Any],
        schema: str,
        keys_for: Callable[[str], dict[str, str]],
        retry: RetryPolicy | None = None,
    ) -> None:
        self.connect = connect
        self.schema = quote_identifier(schema)
        self.keys_for = keys_for
        self.retry = retry or RetryPolicy()
        self.retries = 0
        self.connection: Any = None
        self.batches = 0
        self.next_direct_batch = 0
        self.direct_batches = 0

    def _open(self) -> Any:
        if self.connection is None or self.connection.closed:
            self.connection = self.connect()
            with self.connection.cursor() as cursor:
                for table in TABLES.values():
                    columns = ", ".join(f"{c.staging} {c.staging_type}" for c in table.columns)
                    cursor.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS stage_{table.name} ({columns}) ON COMMIT DELETE ROWS"
                    )
            self.connection.commit()
        return self.connection

    def close(self) -> None:
        if self.connection is not None and not self.connection.closed:
            self.connection.close()

    def load(self, payloads: dict[str, bytes]) -> tuple[dict[str, int], list[RecordReject]]:
        """Upsert one batch in one transaction; return the rows changed per table and rows PostgreSQL refused."""
        import psycopg

        def attempt() -> tuple[dict[str, int], list[RecordReject]]:
            try:
                if self.batches >= self.next_direct_batch:
                    try:
                        changed = self._load_batch(payloads, direct=True)
                        self.direct_batches += 1
                        return changed, []
                    except psycopg.errors.UniqueViolation:
                        self.connection.rollback()
                        self.next_direct_batch = self.batches + DIRECT_RETRY_BATCHES
                return self._load_batch(payloads, direct=False), []
            except psycopg.errors.DataError:
                self.connection.rollback()
                return self._load_row_by_row(payloads)
            except psycopg.OperationalError as error:
                self.close()
                raise TransientError(f"PostgreSQL load failed: {error}") from error

        def count(_attempt: int, _error: TransientError, _delay: float) -> None:
            self.retries += 1

        try:
            return with_retries(attempt, self.retry, on_retry=count)
        finally:
            self.batches += 1

    def _load_batch(self, payloads: dict[str, bytes], direct: bool) -> dict[str, int]:
        connection = self._open()
        changed = {}
        with connection.cursor() as cursor:
            for name in LOAD_ORDER:
                if payloads.get(name):
                    load = self._copy_into_table if direct else self._upsert
                    changed[name] = load(cursor, TABLES[name], payloads[name])
        connection.commit()
        return changed

    def _copy_into_table(self, cursor: Any, table: Table, payload: bytes) -> int:
        """COPY straight into the real table; an existing row raises UniqueViolation and nothing is kept."""
        columns = ", ".join(c.target_name for c in table.columns)
        with cursor.copy(f"COPY {self.schema}.{table.name} ({columns}) FROM STDIN") as copy:
            copy.write(payload)
        return cursor.rowcount

    def _upsert(self, cursor: Any, table: Table, payload: bytes) -> int:
        staging_columns = ", ".join(c.staging for c in table.columns)
        with cursor.copy(f"COPY stage_{table.name} ({staging_columns}) FROM STDIN") as copy:
            copy.write(payload)
        targets = [c.target_name for c in table.columns]
        updates = [column for column in targets if column not in table.key]
        target = f"{self.schema}.{table.name}"
        # The schema is quoted, table and column names are fixed here, values travel through COPY.
        cursor.execute(
            f"INSERT INTO {target} AS t ({', '.join(targets)}) "  # noqa: S608
            f"SELECT {', '.join(c.select for c in table.columns)} FROM stage_{table.name} "
            f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET "
            + ", ".join(f"{column} = EXCLUDED.{column}" for column in updates)
            + f" WHERE ({', '.join('t.' + c for c in updates)}) IS DISTINCT FROM "
            f"({', '.join('EXCLUDED.' + c for c in updates)})"
        )
        return cursor.rowcount

    def _load_row_by_row(self, payloads: dict[str, bytes]) -> tuple[dict[str, int], list[RecordReject]]:
        """The slow path for a batch with a row PostgreSQL refuses: each row in its own savepoint."""
        import psycopg

        connection = self._open()
        changed: dict[str, int] = {}
        rejects: list[RecordReject] = []
        refused_agents: set[str] = set()
        with connection.cursor() as cursor:
            for name in LOAD_ORDER:
                for line in (payloads.get(name) or b"").splitlines():
                    key, agent_id = row_key(name, line, self.keys_for)
                    if agent_id in refused_agents:
                        reason = f"its agent {agent_id} cannot move (PostgreSQL refused it)"
                        rejects.append(RecordReject(key, "agent_rejected", reason, agent_id=agent_id))
                        continue
                    cursor.execute("SAVEPOINT one_row")
                    try:
                        changed[name] = changed.get(name, 0) + self._upsert(cursor, TABLES[name], line + b"\n")
                        # Staging is emptied at commit, and this transaction stages row after row.
                        cursor.execute(f"DELETE FROM stage_{name}")  # noqa: S608 - a fixed table name
                        cursor.execute("RELEASE SAVEPOINT one_row")
                    except psycopg.errors.DataError as error:
                        cursor.execute("ROLLBACK TO SAVEPOINT one_row")
                        if name == "agents":
                            refused_agents.add(agent_id)
                        message = (error.diag.message_primary or str(error)).strip()
                        if error.diag.message_detail:
                            message += f" ({error.diag.message_detail.strip()})"
                        reason = f"PostgreSQL refused the value: {message}"
                        rejects.append(RecordReject(key, "postgres_refused", reason, snippet(line), agent_id))
        connection.commit()
        return changed, rejects
