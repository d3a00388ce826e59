"""The migration report: what every phase did, built from the run state.

``build_report`` is pure: the same run state and server versions give the same
report, dated by the run state's ``updated_at`` rather than the wall clock, so a
report written again over an unchanged run is byte for byte the same file and
the task reports no change. ``render`` turns it into markdown (an end-of-run
summary in the manner of pgloader's), JSON or YAML. ``read_server_versions``
asks each server for its version and never raises: a server that does not
answer is reported with the reason, and the report falls back to the version
the preflight phase recorded. The report's shape is documented in
docs/report.md and docs/report.schema.json.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .connections import open_milvus, open_neo4j, open_postgres, open_redis
from .errors import TerminalError
from .run_state import RUNNING, SUCCEEDED, empty_state, parse_iso, redact
from .settings import MilvusSettings, Neo4jSettings, PostgresSettings, RedisSettings

SCHEMA_VERSION = 1
PHASE_ORDER = (
    "preflight",
    "deploy_milvus",
    "dual_write",
    "migrate_embeddings",
    "validate",
    "shadow",
    "hybrid",
    "migrate_agentdb",
    "rollback",
)
SERVERS = ("neo4j", "milvus", "postgres", "redis")
FORMATS = ("markdown", "json", "yaml")
VALIDATION_CATEGORIES = ("missing_in_milvus", "orphan_in_milvus", "vector_mismatch", "dimension_mismatch")
DEFAULT_STORAGE_MODE = "neo4j_only"
COUNT_KEYS = ("read", "copied", "rejected", "fixed")
ERROR_TEXT_LIMIT = 300
AGENTDB_LIST_LIMIT = 20
NOT_RUN = "not run"


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _counts_by_kind(value: Any) -> dict[str, int]:
    return {str(kind): _int(count) or 0 for kind, count in sorted(_mapping(value).items())}


def _total(value: Any) -> int | None:
    """A count given as a number, or as counts per kind."""
    if isinstance(value, Mapping):
        return sum(_counts_by_kind(value).values())
    return _int(value)


def _sum(values: Sequence[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def ordered_phase_names(phases: Mapping[str, Any]) -> list[str]:
    """The recorded phases in the runbook's order; unknown names after, alphabetically."""
    known = [name for name in PHASE_ORDER if name in phases]
    return known + sorted(name for name in phases if name not in PHASE_ORDER)


def build_embeddings(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The copy's figures from the embeddings_copy result, None when the phase left none."""
    if not result:
        return None
    catch_up_raw = result.get("catch_up")
    catch_up = None
    if isinstance(catch_up_raw, Mapping):
        catch_up = {
            "available": bool(catch_up_raw.get("available", False)),
            "passes": _int(catch_up_raw.get("passes")) or 0,
            "copied": _int(catch_up_raw.get("copied")) or 0,
            "reason": str(catch_up_raw.get("reason") or ""),
            "settled": bool(catch_up_raw["settled"]) if "settled" in catch_up_raw else None,
            "message": str(catch_up_raw.get("message") or ""),
        }
    return {
        "total": _int(result.get("total")),
        "read": _int(result.get("read")),
        "copied": _int(result.get("copied_this_run", result.get("copied"))),
        "migrated": _int(result.get("migrated")),
        "rejected": _int(result.get("rejected")),
        "rejected_by_kind": _counts_by_kind(result.get("rejected_by_kind")),
        "reject_ratio": _float(result.get("reject_ratio")),
        "items_per_second": _float(result.get("items_per_second")),
        "retries": _int(result.get("retries")),
        "reject_file": str(result["reject_file"]) if result.get("reject_file") else None,
        "started_from": str(result["started_from"]) if result.get("started_from") else None,
        "complete": bool(result["complete"]) if "complete" in result else None,
        "catch_up": catch_up,
    }


def _as_fractions(rate: float | None, gate: float | None) -> tuple[float | None, float | None]:
    """Success rates as fractions; a module that reports percents (99.0) is read as such.

    A gate of at most 1% makes no sense, so any value above 1 means both are percents.
    """
    if any(value is not None and value > 1 for value in (rate, gate)):
        return tuple(None if value is None else value / 100 for value in (rate, gate))  # type: ignore[return-value]
    return rate, gate


def build_validation(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The validation's figures from the embeddings_validate result, None when the phase left none."""
    if not result:
        return None
    raw_categories = _mapping(result.get("categories"))
    names = list(VALIDATION_CATEGORIES) + sorted(name for name in raw_categories if name not in VALIDATION_CATEGORIES)
    categories = {}
    for name in names:
        raw = _mapping(raw_categories.get(name))
        samples = raw.get("samples") or []
        categories[name] = {
            "count": _int(raw.get("count")) or 0,
            "samples": [str(sample) for sample in samples] if isinstance(samples, list) else [],
            # A sample cannot see orphans: the module says so rather than reporting a reassuring zero.
            "checked": bool(raw.get("checked", True)),
        }
    rate, gate = _as_fractions(_float(result.get("success_rate")), _float(result.get("min_success_rate")))
    fix = None
    raw_fix = result.get("fix")
    if isinstance(raw_fix, Mapping):
        after, _ = _as_fractions(_float(raw_fix.get("success_rate_after")), gate)
        fix = {
            "applied": bool(raw_fix.get("applied", False)),
            "upserted": _int(raw_fix.get("upserted")) or 0,
            "deleted": _int(raw_fix.get("deleted")) or 0,
            "verified": _int(raw_fix.get("verified")) or 0,
            "remaining": _int(raw_fix.get("remaining")) or 0,
            "success_rate_after": after,
        }
    return {
        "mode": str(result["mode"]) if result.get("mode") else None,
        "source_rows": _int(result.get("source_rows")),
        "checked": _int(result.get("checked", result.get("source_rows"))),
        "matching": _int(result.get("matching")),
        "success_rate": rate,
        "min_success_rate": gate,
        "passed": bool(result["passed"]) if "passed" in result else None,
        "categories": categories,
        "source_rejected_by_kind": _counts_by_kind(result.get("source_rejected_by_kind")),
        "milvus_rows": _int(result.get("milvus_rows")),
        "max_distance": _float(result.get("max_distance")),
        "tolerance": _float(result.get("tolerance")),
        "fix": fix,
    }


def build_hnsw(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The collection and index milvus_collection ensured, None when the phase left none."""
    collection = _mapping(result.get("collection")) if result else {}
    if not collection:
        return None
    index = _mapping(collection.get("index"))
    vector_field = str(_mapping(collection.get("fields")).get("embedding") or "")
    dimension = re.search(r"\((\d+)\)", vector_field)
    return {
        "collection": str(collection["name"]) if collection.get("name") else None,
        "index_type": str(index["type"]) if index.get("type") else None,
        "metric": str(index["metric"]) if index.get("metric") else None,
        "M": _int(index.get("M")),
        "efConstruction": _int(index.get("efConstruction")),
        "dimension": int(dimension.group(1)) if dimension else None,
    }


def _agentdb_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): item for key, item in value.items() if not isinstance(item, Mapping | list)}
    if isinstance(value, list):
        return [item for item in value[:AGENTDB_LIST_LIMIT] if not isinstance(item, Mapping | list)]
    return value


AGENTDB_TABLE_KEYS = ("redis_rows", "postgres_rows", "redis_checksum", "postgres_checksum", "equal")


def build_agentdb(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The AgentDB phase's result, one level deep (nested objects flattened away, lists cut short).

    The verification keeps its per-table counts and checksums: they are what the phase proves.
    """
    if not result:
        return None
    agentdb = {str(key): _agentdb_value(value) for key, value in sorted(result.items())}
    tables = _mapping(_mapping(result.get("verification")).get("tables"))
    if tables:
        agentdb["verification"]["tables"] = {
            str(name): {key: _mapping(values).get(key) for key in AGENTDB_TABLE_KEYS} for name, values in tables.items()
        }
    return agentdb


def preflight_versions(result: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Server versions preflight recorded, from its facts or else from its checks."""
    facts = _mapping(result.get("facts")) if result else {}
    found: dict[str, dict[str, str]] = {}
    for name in SERVERS:
        if facts.get(f"{name}_version"):
            found[name] = {"version": str(facts[f"{name}_version"])}
    checks = (result.get("checks") or []) if result else []
    for check in checks:
        if not isinstance(check, Mapping) or check.get("name") not in SERVERS or check["name"] in found:
            continue
        version = _mapping(check.get("facts")).get("version")
        if version:
            found[check["name"]] = {"version": str(version)}
    if "neo4j" in found and facts.get("neo4j_edition"):
        found["neo4j"]["edition"] = str(facts["neo4j_edition"])
    return found


def build_servers(
    preflight_result: Mapping[str, Any], live: Mapping[str, Mapping[str, Any] | None] | None
) -> dict[str, dict[str, Any]]:
    """Each server's version: live when it answered, else preflight's, else unknown (with the reason)."""
    recorded = preflight_versions(preflight_result)
    servers: dict[str, dict[str, Any]] = {}
    for name in SERVERS:
        probe = _mapping((live or {}).get(name))
        if probe.get("version"):
            entry: dict[str, Any] = {"version": str(probe["version"]), "source": "live"}
            if probe.get("edition"):
                entry["edition"] = str(probe["edition"])
        elif name in recorded:
            entry = {**recorded[name], "source": "preflight"}
        else:
            entry = {"version": None, "source": "unknown"}
        if probe.get("error") and entry["source"] != "live":
            entry["error"] = str(redact(str(probe["error"])))
        servers[name] = {key: entry[key] for key in ("version", "edition", "source", "error") if key in entry}
    return servers


def phase_counts(
    name: str,
    result: Mapping[str, Any],
    embeddings: Mapping[str, Any] | None,
    validation: Mapping[str, Any] | None,
) -> dict[str, int | None]:
    """The read/copied/rejected/fixed columns of one phase (None: not what this phase does)."""
    if name == "migrate_embeddings" and embeddings:
        catch_up = embeddings.get("catch_up") or {}
        return {
            "read": embeddings["read"],
            "copied": _sum([embeddings["copied"], catch_up.get("copied")]),
            "rejected": embeddings["rejected"],
            "fixed": None,
        }
    if name == "validate":
        fix = (validation or {}).get("fix")
        return {
            "read": None,
            "copied": None,
            "rejected": None,
            "fixed": fix["upserted"] + fix["deleted"] if fix and fix["applied"] else None,
        }
    if name == "migrate_agentdb" and "loaded_this_run" in result:
        return {
            "read": _total(result.get("read")),
            "copied": _total(result.get("loaded_this_run")),
            "rejected": _total(result.get("rejected_this_run", result.get("rejected"))),
            "fixed": None,
        }
    return {
        "read": _int(result.get("read")),
        "copied": _int(result.get("copied", result.get("copied_this_run"))),
        "rejected": _total(result.get("rejected")),
        "fixed": _int(result.get("fixed")),
    }


def build_run(state: Mapping[str, Any], phases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run as a whole: its id, overall status, first start, last finish and the span between."""
    statuses = [phase["status"] for phase in phases]
    if not phases:
        status = NOT_RUN
    elif RUNNING in statuses:
        status = RUNNING
    elif "failed" in statuses:
        status = "failed"
    elif SUCCEEDED in statuses:
        status = SUCCEEDED
    else:
        status = "skipped"
    starts = sorted(phase["started_at"] for phase in phases if phase["started_at"])
    ends = sorted(phase["finished_at"] for phase in phases if phase["finished_at"])
    started_at = starts[0] if starts else state.get("created_at")
    finished_at = ends[-1] if ends and status != RUNNING else None
    first, last = parse_iso(started_at), parse_iso(finished_at)
    return {
        "run_id": state.get("run_id"),
        "status": status,
        "started_at": started_at,
        "finished_at": finished_at,
        "seconds": round((last - first).total_seconds(), 3) if first and last else None,
    }


def build_report(
    run_state: Mapping[str, Any] | None, server_versions: Mapping[str, Mapping[str, Any] | None] | None = None
) -> dict[str, Any]:
    """The report of a run, as documented in docs/report.md. Pure and deterministic.

    Args:
        run_state: the run state (``run_state.load_run_state``); missing parts count as not run.
        server_versions: per server (neo4j, milvus, postgres, redis) what ``read_server_versions``
            found, ``{"version": ..., "error": ...}``; a server left out was not asked.

    Returns:
        The report: schema_version, as_of, run, phases, counts, embeddings, validation,
        storage_mode, hnsw, servers, agentdb.
    """
    state = {**empty_state(), **(run_state or {})}
    recorded = _mapping(state.get("phases"))
    results = {name: redact(_mapping(_mapping(entry).get("result"))) for name, entry in recorded.items()}
    embeddings = build_embeddings(results.get("migrate_embeddings", {}))
    validation = build_validation(results.get("validate", {}))
    phases = []
    for name in ordered_phase_names(recorded):
        entry = _mapping(recorded[name])
        phases.append(
            {
                "name": name,
                "status": str(entry.get("status") or "unknown"),
                "started_at": entry.get("started_at"),
                "finished_at": entry.get("finished_at"),
                "seconds": _float(entry.get("seconds")),
                "attempts": _int(entry.get("attempts")) or 0,
                "message": str(redact(str(entry.get("message") or ""))),
                **phase_counts(name, results[name], embeddings, validation),
            }
        )
    mode_changes = [redact(_mapping(change)) for change in state.get("mode_changes") or []]
    return {
        "schema_version": SCHEMA_VERSION,
        "as_of": state.get("updated_at"),
        "run": build_run(state, phases),
        "phases": phases,
        "counts": {key: _sum([phase[key] for phase in phases]) or 0 for key in COUNT_KEYS},
        "embeddings": embeddings,
        "validation": validation,
        "storage_mode": {
            "current": str(mode_changes[-1].get("to")) if mode_changes else DEFAULT_STORAGE_MODE,
            "changes": [
                {
                    "from": str(change.get("from") or ""),
                    "to": str(change.get("to") or ""),
                    "at": change.get("at"),
                    "forced": bool(change.get("forced", False)),
                    "message": str(change.get("message") or ""),
                }
                for change in mode_changes
            ],
        },
        "hnsw": build_hnsw(results.get("deploy_milvus", {})),
        "servers": build_servers(results.get("preflight", {}), server_versions),
        "agentdb": build_agentdb(results.get("migrate_agentdb", {})),
    }


# --- reading the servers' versions -------------------------------------------------------------


def _unreachable(error: BaseException) -> dict[str, Any]:
    reason = " ".join(str(error).split()) or type(error).__name__
    if len(reason) > ERROR_TEXT_LIMIT:
        reason = reason[: ERROR_TEXT_LIMIT - 3] + "..."
    return {"version": None, "error": f"unreachable: {reason}"}


def _neo4j_version(values: Mapping[str, Any]) -> dict[str, Any]:
    settings = Neo4jSettings.from_mapping(values)
    driver = open_neo4j(settings)
    try:
        records, _, _ = driver.execute_query(
            "CALL dbms.components() YIELD name, versions, edition RETURN versions[0] AS version, edition",
            database_=settings.database,
            routing_="r",
        )
    finally:
        driver.close()
    row = dict(records[0].items())
    return {"version": str(row["version"]), "edition": str(row.get("edition") or "")}


def _milvus_version(values: Mapping[str, Any]) -> dict[str, Any]:
    client = open_milvus(MilvusSettings.from_mapping(values))
    try:
        return {"version": str(client.get_server_version())}
    finally:
        client.close()


def _postgres_version(values: Mapping[str, Any]) -> dict[str, Any]:
    with open_postgres(PostgresSettings.from_mapping(values)) as connection:
        return {"version": str(connection.execute("SHOW server_version").fetchone()[0])}


def _redis_version(values: Mapping[str, Any]) -> dict[str, Any]:
    client = open_redis(RedisSettings.from_mapping(values))
    try:
        return {"version": str(client.info("server")["redis_version"])}
    finally:
        client.close()


VERSION_READERS = {
    "neo4j": _neo4j_version,
    "milvus": _milvus_version,
    "postgres": _postgres_version,
    "redis": _redis_version,
}


def read_server_versions(connections: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Ask each server given a connection for its version; never raises.

    Args:
        connections: per server name (neo4j, milvus, postgres, redis) its connection
            options as the modules receive them; None or absent: not asked.

    Returns:
        Per server asked, ``{"version": ...}`` (Neo4j adds ``edition``) or
        ``{"version": None, "error": "unreachable: <reason>"}``.
    """
    found: dict[str, dict[str, Any]] = {}
    for name, reader in VERSION_READERS.items():
        values = connections.get(name)
        if not values:
            continue
        try:
            found[name] = reader(values)
        except Exception as error:  # a report must come out whatever state a server is in
            found[name] = _unreachable(error)
    return found


# --- rendering ---------------------------------------------------------------------------------


def pgloader_duration(seconds: float | None) -> str:
    """``0.512s``, ``1m12.345s``, ``2h03m04.500s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    milliseconds = round(max(float(seconds), 0.0) * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}s"
    if hours:
        return f"{hours}h{minutes:02d}m{secs.zfill(7)}"
    if minutes:
        return f"{minutes}m{secs.zfill(7)}"
    return secs


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.3f}%"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def fixed_width_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """Columns padded to their widest cell, numbers right-aligned, two spaces apart, pgloader style.

    A row that is None draws a rule of dashes.
    """
    widths = [
        max(len(str(row[i])) for row in [header, *[r for r in rows if r is not None]]) for i in range(len(header))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(cell).rjust(width) if align else str(cell).ljust(width)
            for cell, width, align in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(padded)

    rule = "  ".join("-" * width for width in widths)
    return [line(header), rule] + [rule if row is None else line(row) for row in rows]


def code_block(lines: Sequence[str]) -> list[str]:
    """A fenced block whose fence no line can close early."""
    longest = max([len(run) for line in lines for run in re.findall(r"`+", line)] + [2])
    fence = "`" * (longest + 1)
    return [f"{fence}text", *lines, fence]


def code_span(text: str) -> str:
    """Inline code a table cell can hold: any backticks, pipes and line breaks survive."""
    flat = " ".join(str(text).splitlines()) if str(text) else ""
    longest = max([len(run) for run in re.findall(r"`+", flat)] + [0])
    fence = "`" * (longest + 1)
    padding = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{padding}{flat}{padding}{fence}".replace("|", "\\|")


def cell(text: Any) -> str:
    """Plain text a Markdown table cell can hold."""
    return " ".join(str(text).splitlines()).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool]) -> list[str]:
    aligns = ["---:" if align else "---" for align in right]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(aligns) + "|",
        *["| " + " | ".join(str(value) for value in row) + " |" for row in rows],
    ]


def _summary_table(report: Mapping[str, Any]) -> list[str]:
    rows: list[Sequence[str] | None] = []
    for phase in report["phases"]:
        time = "running" if phase["status"] == RUNNING else pgloader_duration(phase["seconds"])
        rows.append(
            [
                phase["name"],
                phase["status"],
                *[_number(phase[key]) for key in COUNT_KEYS],
                time,
            ]
        )
    total_seconds = _sum_seconds(report["phases"])
    rows.append(None)
    rows.append(["Totals", "", *[str(report["counts"][key]) for key in COUNT_KEYS], pgloader_duration(total_seconds)])
    return fixed_width_table(
        ["phase", "status", "read", "copied", "rejected", "fixed", "time"],
        rows,
        [False, False, True, True, True, True, True],
    )


def _sum_seconds(phases: Sequence[Mapping[str, Any]]) -> float | None:
    seconds = [phase["seconds"] for phase in phases if phase["seconds"] is not None]
    return round(sum(seconds), 3) if seconds else None


def _rejects_section(report: Mapping[str, Any]) -> list[str]:
    embeddings = report["embeddings"]
    if embeddings is None:
        return [NOT_RUN]
    kinds = embeddings["rejected_by_kind"]
    if not kinds:
        rejected = embeddings["rejected"]
        return [f"{rejected} rows rejected; no reasons recorded." if rejected else "No row rejected."]
    ordered = sorted(kinds.items(), key=lambda item: (-item[1], item[0]))
    lines = markdown_table(["reason", "rows"], [[code_span(kind), count] for kind, count in ordered], [False, True])
    lines.append(f"| **total** | **{sum(kinds.values())}** |")
    notes = []
    if embeddings["reject_ratio"] is not None:
        notes.append(f"Reject ratio {percent(embeddings['reject_ratio'])}.")
    if embeddings["reject_file"]:
        notes.append(f"One line per row with its reason in {code_span(embeddings['reject_file'])}.")
    return [*lines, "", " ".join(notes)] if notes else lines


def _validation_section(report: Mapping[str, Any]) -> list[str]:
    validation = report["validation"]
    if validation is None:
        return [NOT_RUN]
    passed = validation["passed"]
    gate = "passed" if passed else ("FAILED" if passed is False else "unknown")
    lines = [
        f"- mode: {validation['mode'] or '-'}; checked {_number(validation['checked'])} of "
        f"{_number(validation['source_rows'])} source rows; {_number(validation['matching'])} matching",
        f"- success rate: {percent(validation['success_rate'])} (gate {percent(validation['min_success_rate'])}): "
        f"**{gate}**",
    ]
    if validation["max_distance"] is not None:
        tolerance = "" if validation["tolerance"] is None else f" (tolerance {validation['tolerance']:g})"
        lines.append(f"- largest L2 distance between matched vectors: {validation['max_distance']:g}{tolerance}")
    if validation["milvus_rows"] is not None:
        lines.append(f"- rows in Milvus: {validation['milvus_rows']}")
    lines.append("")
    rows = [
        [
            code_span(name),
            category["count"] if category["checked"] else "not checked",
            ", ".join(code_span(json_text(sample)) for sample in category["samples"]),
        ]
        for name, category in validation["categories"].items()
    ]
    lines += markdown_table(["category", "count", "sample ids"], rows, [False, True, False])
    if validation["source_rejected_by_kind"]:
        described = ", ".join(f"{kind} {count}" for kind, count in validation["source_rejected_by_kind"].items())
        lines += ["", f"Source rows the copy rejects, not counted as missing: {described}."]
    fix = validation["fix"]
    if fix is None:
        lines += ["", "Repair: not requested."]
    elif fix["applied"]:
        lines += [
            "",
            f"Repair: upserted {fix['upserted']}, deleted {fix['deleted']}, verified {fix['verified']}, "
            f"remaining {fix['remaining']}; success rate after: {percent(fix['success_rate_after'])}.",
        ]
    else:
        lines += ["", f"Repair: not applied (would upsert {fix['upserted']}, delete {fix['deleted']})."]
    return lines


def json_text(value: str) -> str:
    """An id as a JSON string, so quotes, backslashes and control characters read unambiguously."""
    return json.dumps(value, ensure_ascii=False)


def _catch_up_section(report: Mapping[str, Any]) -> list[str]:
    embeddings = report["embeddings"]
    catch_up = embeddings["catch_up"] if embeddings else None
    if catch_up is None:
        return [NOT_RUN]
    if not catch_up["available"]:
        return [f"Not available: {catch_up['reason'] or 'no reason given'}."]
    settled = {True: ", settled", False: ", not settled", None: ""}[catch_up["settled"]]
    lines = [f"{catch_up['passes']} passes, {catch_up['copied']} rows copied{settled}."]
    return lines + [cell(text) for text in (catch_up["reason"], catch_up["message"]) if text]


def _storage_mode_section(report: Mapping[str, Any]) -> list[str]:
    storage = report["storage_mode"]
    lines = [f"Current mode: {code_span(storage['current'])}.", ""]
    if not storage["changes"]:
        return [*lines, "No mode change recorded."]
    rows = [
        [
            change["at"] or "-",
            code_span(change["from"]),
            code_span(change["to"]),
            "yes" if change["forced"] else "no",
            cell(change["message"]),
        ]
        for change in storage["changes"]
    ]
    return lines + markdown_table(["at", "from", "to", "forced", "message"], rows, [False] * 5)


def _hnsw_section(report: Mapping[str, Any]) -> list[str]:
    hnsw = report["hnsw"]
    if hnsw is None:
        return [NOT_RUN]
    return [
        f"Collection {code_span(hnsw['collection'] or '-')}: {hnsw['index_type'] or 'HNSW'} index, "
        f"metric {hnsw['metric'] or '-'}, dimension {_number(hnsw['dimension'])}, "
        f"M {_number(hnsw['M'])}, efConstruction {_number(hnsw['efConstruction'])}."
    ]


def _servers_section(report: Mapping[str, Any]) -> list[str]:
    rows = []
    for name, server in report["servers"].items():
        version = server["version"] or "unknown"
        if server.get("edition"):
            version = f"{version} {server['edition']}"
        rows.append([name, cell(version), server["source"], cell(server.get("error", ""))])
    return markdown_table(["server", "version", "source", "note"], rows, [False] * 4)


def _agentdb_section(report: Mapping[str, Any]) -> list[str]:
    agentdb = report["agentdb"]
    if agentdb is None:
        return [NOT_RUN]
    lines = []
    verification = _mapping(agentdb.get("verification"))
    tables = _mapping(verification.get("tables"))
    if tables:
        verdict = "equal" if verification.get("equal") else "DIFFERENT"
        lines += [
            f"Verification, Redis against PostgreSQL: {verdict} "
            f"({verification.get('agents_equal')} of {verification.get('agents_compared')} agents equal).",
            "",
        ]
        rows = [
            [name, _number(values.get("redis_rows")), _number(values.get("postgres_rows")),
             code_span(str(values.get("redis_checksum"))), code_span(str(values.get("postgres_checksum"))),
             "yes" if values.get("equal") else "no"]
            for name, values in tables.items()
        ]  # fmt: skip
        header = ["table", "Redis rows", "PostgreSQL rows", "Redis checksum", "PostgreSQL checksum", "equal"]
        lines += [*markdown_table(header, rows, [False, True, True, False, False, False]), ""]
    for key, value in agentdb.items():
        if key != "verification":
            lines.append(f"- {key}: {cell(json.dumps(value, ensure_ascii=False, sort_keys=True))}")
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as an end-of-run summary: a fixed-width phase table, totals, then one section per topic."""
    run = report["run"]
    lines = [
        "# Migration report",
        "",
        f"Run {code_span(run['run_id'] or '-')}: **{run['status']}**; started {run['started_at'] or '-'}, "
        f"finished {run['finished_at'] or '-'} ({pgloader_duration(run['seconds'])} end to end). "
        f"As of {report['as_of'] or '-'}.",
        "",
    ]
    if report["phases"]:
        lines += code_block(_summary_table(report))
        notes = [f"- {phase['name']}: {cell(phase['message'])}" for phase in report["phases"] if phase["message"]]
        if notes:
            lines += ["", *notes]
    else:
        lines.append("No phase recorded yet: not run.")
    for title, section in (
        ("Rejected rows by reason", _rejects_section),
        ("Validation", _validation_section),
        ("Catch-up", _catch_up_section),
        ("Storage mode changes", _storage_mode_section),
        ("HNSW", _hnsw_section),
        ("Servers", _servers_section),
        ("AgentDB", _agentdb_section),
    ):
        lines += ["", f"## {title}", "", *section(report)]
    return "\n".join(lines) + "\n"


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_yaml(report: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(report), sort_keys=False, allow_unicode=True, default_flow_style=False)


def render(report: Mapping[str, Any], report_format: str) -> str:
    """The report as text in ``report_format`` (markdown, json or yaml).

    Raises:
        TerminalError: an unknown format.
    """
    renderers = {"markdown": render_markdown, "json": render_json, "yaml": render_yaml}
    if report_format not in renderers:
        raise TerminalError(f"report format {report_format!r} is not one of {', '.join(FORMATS)}")
    return renderers[report_format](report)


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """A few lines for the play's output."""
    run, counts = report["run"], report["counts"]
    lines = [
        f"run {run['run_id'] or '-'}: {run['status']}; read {counts['read']}, copied {counts['copied']}, "
        f"rejected {counts['rejected']}, fixed {counts['fixed']}",
        "phases: " + (", ".join(f"{phase['name']} {phase['status']}" for phase in report["phases"]) or "none recorded"),
    ]
    validation = report["validation"]
    if validation is not None:
        lines.append(
            f"validation: {percent(validation['success_rate'])}, {'passed' if validation['passed'] else 'not passed'}"
        )
    lines.append(f"storage mode: {report['storage_mode']['current']}")
    return lines


def secrets_in(text: str, secrets: Mapping[str, str]) -> list[str]:
    """The names of the secrets that appear in ``text``, raw or as JSON or Markdown would escape them."""
    flat = " ".join(text.split())
    found = []
    for name, secret in secrets.items():
        if not secret:
            continue
        forms = {
            secret,
            json.dumps(secret, ensure_ascii=False)[1:-1],
            secret.replace("|", "\\|"),
            " ".join(secret.split()),
        }
        if any(form and (form in text or form in flat) for form in forms):
            found.append(name)
    return sorted(found)
