from __future__ import annotations

import copy
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
import yaml
from ansible.module_utils.hybrid_migration import report as report_module
from ansible.module_utils.hybrid_migration.errors import TerminalError, TransientError
from ansible.module_utils.hybrid_migration.report import (
    build_report,
    percent,
    pgloader_duration,
    read_server_versions,
    render,
    secrets_in,
)
from ansible.module_utils.hybrid_migration.run_state import (
    empty_state,
    record_mode_change,
    record_phase,
)
from conftest import ROOT

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
SECRETS = ("hunter2-neo4j-pw", "tok-milvus-42", "pw-in-uri-77", "raw-secret-99")

PREFLIGHT_RESULT = {
    "changed": False,
    "invocation": {"module_args": {"neo4j": {"password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}},
    "passed": True,
    "facts": {
        "neo4j_version": "5.26.19",
        "neo4j_edition": "community",
        "milvus_version": "v2.3.5-lite",
        "postgres_version": "15.20",
    },
    "checks": [
        {"name": "neo4j", "status": "passed", "summary": "Neo4j 5.26.19", "facts": {"version": "5.26.19"}},
        {"name": "redis", "status": "passed", "summary": "Redis 7.0.15", "facts": {"version": "7.0.15"}},
    ],
    "settings": {"neo4j": {"password": SECRETS[0]}},
}
DEPLOY_RESULT = {
    "changed": True,
    "actions": ["create collection"],
    "collection": {
        "name": "media_embeddings",
        "fields": {"id": "VARCHAR(512) primary key", "embedding": "FLOAT_VECTOR(768)", "updated_at": "INT64"},
        "index": {"type": "HNSW", "metric": "COSINE", "M": 16, "efConstruction": 256},
    },
}
COPY_RESULT = {
    "changed": True,
    "complete": True,
    "started_from": "beginning",
    "total": 20017,
    "read": 20017,
    "copied_this_run": 20012,
    "migrated": 20012,
    "rejected": 5,
    "rejected_by_kind": {"missing_embedding": 1, "not_finite": 2, "wrong_dimension": 2},
    "reject_ratio": 0.00025,
    "retries": 3,
    "items_per_second": 7343.25,
    "reject_file": "/var/lib/hybrid-migration/embeddings_rejects.jsonl",
    "checkpoint": {"last_id": "media-20016"},
    "catch_up": {
        "available": True,
        "passes": 2,
        "copied": 14,
        "reason": "",
        "settled": True,
        "message": "2 passes, 14 changed rows copied",
        "indexed": True,
    },
    "milvus": {"token": SECRETS[1]},
}
VALIDATE_RESULT = {
    "mode": "full_scan",
    "source_rows": 20012,
    "checked": 20012,
    "matching": 20009,
    "success_rate": 0.99985,
    "min_success_rate": 0.99,
    "passed": True,
    "categories": {
        "missing_in_milvus": {"count": 2, "samples": ["media-1", 'we"ird|`id\\']},
        "vector_mismatch": {"count": 1, "samples": ["media-9"]},
    },
    "source_rejected_by_kind": {"wrong_dimension": 2},
    "milvus_rows": 20011,
    "max_distance": 3e-7,
    "tolerance": 1e-5,
    "fix": {"applied": True, "upserted": 3, "deleted": 1, "verified": 4, "remaining": 0, "success_rate_after": 1.0},
}


def full_state() -> dict[str, Any]:
    state = empty_state()
    steps = [
        (0, "preflight", "running", "", {}),
        (4.512, "preflight", "succeeded", "", PREFLIGHT_RESULT),
        (5, "deploy_milvus", "running", "", {}),
        (6.201, "deploy_milvus", "succeeded", "", DEPLOY_RESULT),
        (10, "migrate_embeddings", "running", "", {}),
        (82.345, "migrate_embeddings", "succeeded", "", COPY_RESULT),
        (90, "validate", "running", "", {}),
        (102, "validate", "succeeded", f"checked against bolt://neo4j:{SECRETS[2]}@db:7687", VALIDATE_RESULT),
        (103, "zz_custom", "skipped", "not wanted", {}),
        (104, "rollback", "skipped", "", {}),
    ]
    for seconds, phase, status, message, result in steps:
        state, _ = record_phase(state, phase, status, message, result, now=T0 + timedelta(seconds=seconds))
        if phase == "deploy_milvus" and status == "succeeded":
            change = {"from": "neo4j_only", "to": "dual_write", "message": "acked"}
            state, _ = record_mode_change(state, change, T0 + timedelta(seconds=8))
    return state


def test_full_report() -> None:
    state = full_state()
    report = build_report(
        state,
        {
            "neo4j": {"version": "5.26.20", "edition": "community"},
            "milvus": {"version": None, "error": "unreachable: refused"},
        },
    )
    assert report["schema_version"] == 1
    assert report["as_of"] == state["updated_at"] == "2025-03-01T12:01:44.000Z"
    assert report["run"] == {
        "run_id": state["run_id"],
        "status": "succeeded",
        "started_at": "2025-03-01T12:00:00.000Z",
        "finished_at": "2025-03-01T12:01:44.000Z",
        "seconds": 104.0,
    }
    assert [phase["name"] for phase in report["phases"]] == [
        "preflight",
        "deploy_milvus",
        "migrate_embeddings",
        "validate",
        "rollback",
        "zz_custom",
    ]
    copy_phase = report["phases"][2]
    assert copy_phase == {
        "name": "migrate_embeddings",
        "status": "succeeded",
        "started_at": "2025-03-01T12:00:10.000Z",
        "finished_at": "2025-03-01T12:01:22.345Z",
        "seconds": 72.345,
        "attempts": 1,
        "message": "",
        "read": 20017,
        "copied": 20026,
        "rejected": 5,
        "fixed": None,
    }
    assert report["phases"][3]["fixed"] == 4
    assert report["counts"] == {"read": 20017, "copied": 20026, "rejected": 5, "fixed": 4}
    assert report["embeddings"] == {
        "total": 20017,
        "read": 20017,
        "copied": 20012,
        "migrated": 20012,
        "rejected": 5,
        "rejected_by_kind": {"missing_embedding": 1, "not_finite": 2, "wrong_dimension": 2},
        "reject_ratio": 0.00025,
        "items_per_second": 7343.25,
        "retries": 3,
        "reject_file": "/var/lib/hybrid-migration/embeddings_rejects.jsonl",
        "started_from": "beginning",
        "complete": True,
        "catch_up": {
            "available": True,
            "passes": 2,
            "copied": 14,
            "reason": "",
            "settled": True,
            "message": "2 passes, 14 changed rows copied",
        },
    }
    validation = report["validation"]
    assert validation["success_rate"] == 0.99985 and validation["min_success_rate"] == 0.99
    assert validation["passed"] is True and validation["mode"] == "full_scan"
    assert list(validation["categories"]) == [
        "missing_in_milvus",
        "orphan_in_milvus",
        "vector_mismatch",
        "dimension_mismatch",
    ]
    assert validation["categories"]["missing_in_milvus"] == {
        "count": 2,
        "samples": ["media-1", 'we"ird|`id\\'],
        "checked": True,
    }
    assert validation["categories"]["orphan_in_milvus"] == {"count": 0, "samples": [], "checked": True}
    assert validation["checked"] == 20012 and validation["max_distance"] == 3e-7 and validation["milvus_rows"] == 20011
    assert validation["fix"]["applied"] is True and validation["fix"]["success_rate_after"] == 1.0
    assert report["hnsw"] == {
        "collection": "media_embeddings",
        "index_type": "HNSW",
        "metric": "COSINE",
        "M": 16,
        "efConstruction": 256,
        "dimension": 768,
    }
    assert report["storage_mode"]["current"] == "dual_write"
    assert report["storage_mode"]["changes"][0]["from"] == "neo4j_only"
    assert report["servers"] == {
        "neo4j": {"version": "5.26.20", "edition": "community", "source": "live"},
        "milvus": {"version": "v2.3.5-lite", "source": "preflight", "error": "unreachable: refused"},
        "postgres": {"version": "15.20", "source": "preflight"},
        "redis": {"version": "7.0.15", "source": "preflight"},
    }
    assert report["agentdb"] is None
    jsonschema.validate(report, SCHEMA)


def test_empty_state_reports_nothing_run() -> None:
    report = build_report(empty_state(), {})
    assert report["as_of"] is None
    assert report["run"] == {
        "run_id": None,
        "status": "not run",
        "started_at": None,
        "finished_at": None,
        "seconds": None,
    }
    assert report["phases"] == []
    assert report["counts"] == {"read": 0, "copied": 0, "rejected": 0, "fixed": 0}
    assert report["embeddings"] is None and report["validation"] is None and report["hnsw"] is None
    assert report["storage_mode"] == {"current": "neo4j_only", "changes": []}
    assert {server["source"] for server in report["servers"].values()} == {"unknown"}
    jsonschema.validate(report, SCHEMA)
    markdown = render(report, "markdown")
    assert "No phase recorded yet: not run." in markdown
    assert markdown.count("\nnot run\n") == 5  # rejects, validation, catch-up, HNSW, AgentDB
    assert build_report(None) == report


def test_some_phases_only_while_the_copy_runs() -> None:
    state, _ = record_phase(empty_state(), "preflight", "succeeded", "", PREFLIGHT_RESULT, now=T0)
    state, _ = record_phase(state, "migrate_embeddings", "running", now=T0 + timedelta(seconds=30))
    state, _ = record_phase(
        state,
        "migrate_agentdb",
        "failed",
        "redis down",
        {
            "read": 7,
            "copied": 5,
            "rejected": {"bad_json": 2},
            "nested": {"a": {"b": 1}, "c": 2},
            "ids": list(range(30)),
        },
        now=T0 + timedelta(seconds=31),
    )
    report = build_report(state, None)
    assert report["run"]["status"] == "running"
    assert report["run"]["finished_at"] is None and report["run"]["seconds"] is None
    assert report["embeddings"] is None and report["validation"] is None
    assert [(phase["name"], phase["status"]) for phase in report["phases"]] == [
        ("preflight", "succeeded"),
        ("migrate_embeddings", "running"),
        ("migrate_agentdb", "failed"),
    ]
    agentdb_phase = report["phases"][2]
    assert (agentdb_phase["read"], agentdb_phase["copied"], agentdb_phase["rejected"]) == (7, 5, 2)
    assert report["agentdb"]["nested"] == {"c": 2}
    assert report["agentdb"]["ids"] == list(range(20))
    assert report["counts"] == {"read": 7, "copied": 5, "rejected": 2, "fixed": 0}
    jsonschema.validate(report, SCHEMA)
    markdown = render(report, "markdown")
    assert re.search(r"^migrate_embeddings\s+running\s+-\s+-\s+-\s+-\s+running$", markdown, re.MULTILINE)
    assert "- migrate_agentdb: redis down" in markdown


def test_a_failed_phase_fails_the_run_and_percent_rates_are_read_as_percent() -> None:
    result = {**VALIDATE_RESULT, "success_rate": 98.5, "min_success_rate": 99.0, "passed": False, "fix": None}
    state, _ = record_phase(empty_state(), "validate", "failed", "below the gate", result, now=T0)
    report = build_report(state)
    assert report["run"]["status"] == "failed"
    assert report["validation"]["success_rate"] == pytest.approx(0.985)
    assert report["validation"]["min_success_rate"] == pytest.approx(0.99)
    markdown = render(report, "markdown")
    assert "success rate: 98.500% (gate 99.000%): **FAILED**" in markdown
    assert "Repair: not requested." in markdown
    jsonschema.validate(report, SCHEMA)


def test_tolerates_a_validation_result_with_missing_keys() -> None:
    state, _ = record_phase(empty_state(), "validate", "succeeded", "", {"checked": 10}, now=T0)
    report = build_report(state)
    assert report["validation"]["checked"] == 10
    assert report["validation"]["success_rate"] is None and report["validation"]["passed"] is None
    assert report["validation"]["categories"]["vector_mismatch"] == {"count": 0, "samples": [], "checked": True}
    jsonschema.validate(report, SCHEMA)
    assert "success rate: - (gate -): **unknown**" in render(report, "markdown")


def test_the_schema_refuses_a_report_that_breaks_it() -> None:
    report = build_report(full_state())
    broken = copy.deepcopy(report)
    del broken["counts"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    broken = copy.deepcopy(report)
    broken["servers"]["redis"]["source"] = "guess"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_same_state_renders_the_same_bytes_whatever_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    state = full_state()
    first = {fmt: render(build_report(state), fmt) for fmt in ("markdown", "json", "yaml")}
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    second = {fmt: render(build_report(copy.deepcopy(state)), fmt) for fmt in ("markdown", "json", "yaml")}
    assert first == second
    assert "2025-03-01T12:01:44.000Z" in first["markdown"]


@pytest.mark.parametrize("state_factory", [full_state, empty_state])
def test_json_and_yaml_load_back_to_the_report(state_factory: Any) -> None:
    report = build_report(state_factory(), {"redis": {"version": None, "error": "unreachable: x"}})
    as_json = render(report, "json")
    assert as_json.endswith("}\n")
    assert json.loads(as_json) == report
    assert as_json == json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    as_yaml = render(report, "yaml")
    assert yaml.safe_load(as_yaml) == report
    assert list(yaml.safe_load(as_yaml)) == list(report)  # not sorted: schema_version first
    jsonschema.validate(json.loads(as_json), SCHEMA)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(TerminalError, match="markdown, json, yaml"):
        render(build_report(None), "html")


def summary_block(markdown: str) -> list[str]:
    match = re.search(r"^```text\n(.*?)\n```$", markdown, re.MULTILINE | re.DOTALL)
    assert match, markdown
    return match.group(1).splitlines()


def test_the_markdown_table_lines_align() -> None:
    markdown = render(build_report(full_state()), "markdown")
    lines = summary_block(markdown)
    assert lines[0].split() == ["phase", "status", "read", "copied", "rejected", "fixed", "time"]
    assert len({len(line) for line in lines}) == 1, lines
    rule = lines[1]
    assert lines[-2] == rule and lines[-1].startswith("Totals")
    spans = [match.span() for match in re.finditer(r"-+", rule)]
    assert len(spans) == 7
    for line in lines[2:-2] + lines[-1:]:
        for column, (start, end) in enumerate(spans):
            text = line[start:end]
            assert line[end : end + 2].strip() == "", f"column {column} overflows in {line!r}"
            if column >= 2:
                assert text == text.rjust(end - start) and text.strip(), (
                    f"column {column} not right-aligned in {line!r}"
                )
    copy_line = next(line for line in lines if line.startswith("migrate_embeddings"))
    assert copy_line.split() == ["migrate_embeddings", "succeeded", "20017", "20026", "5", "-", "1m12.345s"]
    assert lines[-1].split() == ["Totals", "20017", "20026", "5", "4", "1m30.058s"]


def test_the_markdown_sections() -> None:
    markdown = render(
        build_report(full_state(), {"postgres": {"version": None, "error": "unreachable: refused"}}), "markdown"
    )
    titles = re.findall(r"^## (.+)$", markdown, re.MULTILINE)
    assert titles == [
        "Rejected rows by reason",
        "Validation",
        "Catch-up",
        "Storage mode changes",
        "HNSW",
        "Servers",
        "AgentDB",
    ]
    assert (
        "| `not_finite` | 2 |\n| `wrong_dimension` | 2 |\n| `missing_embedding` | 1 |\n| **total** | **5** |"
        in markdown
    )
    assert "success rate: 99.985% (gate 99.000%): **passed**" in markdown
    assert '| `missing_in_milvus` | 2 | `"media-1"`, ``"we\\"ird\\|`id\\\\"`` |' in markdown
    assert "2 passes, 14 rows copied, settled.\n2 passes, 14 changed rows copied\n" in markdown
    assert "- largest L2 distance between matched vectors: 3e-07 (tolerance 1e-05)" in markdown
    assert "| 2025-03-01T12:00:08.000Z | `neo4j_only` | `dual_write` | no | acked |" in markdown
    assert "metric COSINE, dimension 768, M 16, efConstruction 256" in markdown
    assert "| postgres | 15.20 | preflight | unreachable: refused |" in markdown
    assert "| neo4j | 5.26.19 community | preflight |  |" in markdown


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.512, "0.512s"),
        (0, "0.000s"),
        (59.9996, "1m00.000s"),
        (72.345, "1m12.345s"),
        (3723.5, "1h02m03.500s"),
    ],
)
def test_pgloader_durations(seconds: float | None, text: str) -> None:
    assert pgloader_duration(seconds) == text


def test_percent_has_three_decimals() -> None:
    assert percent(0.99985) == "99.985%"
    assert percent(None) == "-"


def test_a_secret_in_a_result_never_appears_in_any_rendering() -> None:
    state = full_state()
    # A state file not written by migration_run_state: the secret sits there raw.
    state["phases"]["migrate_agentdb"] = {
        "status": "succeeded",
        "result": {"postgres_password": SECRETS[3], "conn": {"credential": SECRETS[3]}, "read": 1},
    }
    for secret in SECRETS[:3]:
        assert secret not in json.dumps(state)
    report = build_report(state, {"neo4j": {"version": None, "error": f"unreachable: bolt://u:{SECRETS[2]}@h"}})
    for fmt in ("markdown", "json", "yaml"):
        text = render(report, fmt)
        for secret in SECRETS:
            assert secret not in text, (fmt, secret)
    assert "********" in render(report, "json")


def test_secrets_in_finds_raw_and_escaped_secrets() -> None:
    assert secrets_in("nothing here", {"neo4j.password": "p@ss"}) == []
    assert secrets_in("a p@ss b", {"neo4j.password": "p@ss", "milvus.token": ""}) == ["neo4j.password"]
    assert secrets_in(json.dumps({"x": 'q"uote'}), {"redis.password": 'q"uote'}) == ["redis.password"]
    assert secrets_in("a\\|b", {"postgres.password": "a|b"}) == ["postgres.password"]


def test_server_versions_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(_: Any) -> dict[str, Any]:
        raise TransientError("Redis at 127.0.0.1:6379 unreachable:\n  connection refused")

    def broken(_: Any) -> dict[str, Any]:
        raise KeyError("redis_version")

    monkeypatch.setitem(report_module.VERSION_READERS, "redis", down)
    monkeypatch.setitem(report_module.VERSION_READERS, "postgres", broken)
    monkeypatch.setitem(report_module.VERSION_READERS, "milvus", lambda _: {"version": "v2.3.5"})
    found = read_server_versions(
        {"redis": {"host": "x"}, "postgres": {"host": "y"}, "milvus": {"uri": "z"}, "neo4j": None}
    )
    assert found == {
        "milvus": {"version": "v2.3.5"},
        "postgres": {"version": None, "error": "unreachable: 'redis_version'"},
        "redis": {"version": None, "error": "unreachable: Redis at 127.0.0.1:6379 unreachable: connection refused"},
    }


def test_servers_that_do_not_listen_are_reported_unreachable() -> None:
    """Real clients against a port nothing listens on: the report still comes out."""
    found = read_server_versions(
        {
            "neo4j": {"uri": "bolt://127.0.0.1:1", "password": "x", "connect_timeout": 2.0},
            "postgres": {"host": "127.0.0.1", "port": 1, "password": "x", "connect_timeout": 2},
            "redis": {"host": "127.0.0.1", "port": 1, "connect_timeout": 2.0},
            "milvus": {"uri": "http://127.0.0.1:1", "timeout": 1.0},
        }
    )
    assert set(found) == {"neo4j", "postgres", "redis", "milvus"}
    for name, entry in found.items():
        assert entry["version"] is None and entry["error"].startswith("unreachable: "), name
    assert "127.0.0.1:1" in found["milvus"]["error"]


def test_malformed_connection_settings_are_reported_not_raised() -> None:
    found = read_server_versions({"neo4j": {"uri": "http://127.0.0.1:7474", "password": "x"}})
    assert found["neo4j"]["version"] is None
    assert "is not a bolt:// or neo4j:// URI" in found["neo4j"]["error"]


def test_a_sample_says_orphans_were_not_checked_and_checked_falls_back_to_source_rows() -> None:
    result = {
        "mode": "sample",
        "source_rows": 1000,
        "matching": 1000,
        "success_rate": 1.0,
        "passed": True,
        "categories": {"orphan_in_milvus": {"count": 0, "samples": [], "checked": False}},
    }
    state, _ = record_phase(empty_state(), "validate", "succeeded", "", result, now=T0)
    report = build_report(state)
    assert report["validation"]["checked"] == 1000
    assert report["validation"]["categories"]["orphan_in_milvus"]["checked"] is False
    markdown = render(report, "markdown")
    assert "| `orphan_in_milvus` | not checked |  |" in markdown
    assert "| `missing_in_milvus` | 0 |  |" in markdown
    jsonschema.validate(report, SCHEMA)


def test_a_catch_up_that_could_not_run_says_why() -> None:
    result = {**COPY_RESULT, "catch_up": {"available": False, "reason": "no updated_at index"}}
    state, _ = record_phase(empty_state(), "migrate_embeddings", "succeeded", "", result, now=T0)
    report = build_report(state)
    assert report["embeddings"]["catch_up"]["available"] is False
    assert "## Catch-up\n\nNot available: no updated_at index.\n" in render(report, "markdown")
