"""Phase 8 on the real Redis and PostgreSQL: exact copy, idempotent re-runs, kill -9 and resume, rejects."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from ansible.module_utils.hybrid_migration.seed import RedisSeeder, SeedPlan, redis_bad_records

from .conftest import SANDBOX, kill_playbook_when, run_module, run_playbook

PREFIX = "agentdb-test:"
SCHEMA = "agentdb_test"
STATE = SANDBOX / "state" / "agentdb-test"
PLAN = SeedPlan(agent_count=6, experiences_per_agent=150, qvalues_per_agent=30, bad_records=True, random_seed=11)
# Bad records beyond the seeder's catalogue: kind, key suffix, reason, how to write them.
EXTRA_BAD = [
    ("experience_reward_not_numeric", "reward is not finite"),
    ("nul_character", "action contains a NUL character, which PostgreSQL cannot store"),
    ("wrong_type", "key is a hash, expected a stream"),
    ("unlisted_key", "key under the prefix belongs to no agent in the agents set"),
    ("not_utf8", "state is not valid UTF-8"),
    ("postgres_refused", "PostgreSQL refused the value: invalid input syntax for type json ("),
]


def redis_client() -> redis.Redis:
    return redis.Redis(password="sandbox-redis-secret")


def postgres() -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", user="migration", password="sandbox-postgres-secret", dbname="agentdb")


def seed_redis(plan: SeedPlan = PLAN) -> None:
    client = redis_client()
    seeder = RedisSeeder(client, PREFIX, plan)
    seeder.reset()
    seeder.seed("agentdb-test")
    good = PREFIX + "agent:agent-0001"
    entry = {"state": "{}", "action": "play", "reward": "0.5", "next_state": "{}", "done": "0", "ts": "5"}
    client.xadd(f"{good}:experiences", {**entry, "reward": "nan"}, id="9000000000000-0")
    client.xadd(f"{good}:experiences", {**entry, "action": "pl\x00ay"}, id="9000000000001-0")
    client.xadd(f"{good}:experiences", {**entry, "state": b"\xff\xfe"}, id="9000000000002-0")
    # Valid JSON to Python, refused by jsonb: the batch is loaded again row by row
    client.xadd(f"{good}:experiences", {**entry, "state": '{"s": "\\ud800"}'}, id="9000000000003-0")
    client.delete(PREFIX + "agent:agent-0002:experiences")
    client.hset(PREFIX + "agent:agent-0002:experiences", mapping={"not": "a stream"})
    client.set(PREFIX + "leftover:cache", "1")


def drop_schema() -> None:
    with postgres() as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def copy_args(**overrides: Any) -> dict[str, Any]:
    return {
        "redis": "{{ redis_connection | combine({'key_prefix': '" + PREFIX + "'}) }}",
        "postgres": "{{ postgres_connection }}",
        "schema": SCHEMA,
        "batch_size": 50,
        "checkpoint_file": str(STATE / "checkpoint.json"),
        "reject_file": str(STATE / "rejects.jsonl"),
        "verification_file": str(STATE / "verification.json"),
        "max_reject_ratio": 0.05,
        **overrides,
    }


def reset_state() -> None:
    for name in ("checkpoint.json", "rejects.jsonl", "verification.json"):
        (STATE / name).unlink(missing_ok=True)


@pytest.fixture()
def fresh() -> None:
    seed_redis()
    drop_schema()
    reset_state()


def expected_rows(refused: frozenset[str] = frozenset()) -> dict[str, dict[tuple[str, ...], tuple[Any, ...]]]:
    """What PostgreSQL must hold, read straight from Redis with independent code (good agents only).

    ``refused``: stream entries PostgreSQL refused (named in the reject file), not expected either.
    """
    client = redis_client()
    rows: dict[str, dict[tuple[str, ...], tuple[Any, ...]]] = {"agents": {}, "q": {}, "policies": {}, "experiences": {}}
    for index in range(PLAN.agent_count):
        agent = f"agent-{index:04d}"
        base = f"{PREFIX}agent:{agent}"
        fields = {k.decode(): v.decode() for k, v in client.hgetall(base).items()}
        rows["agents"][(agent,)] = (fields["name"], fields["kind"], fields["version"], json.loads(fields["config"]))
        for name, value in client.hgetall(base + ":qvalues").items():
            state, _, action = name.decode().rpartition("|")
            if state and not name.startswith(b"bad") and value != b"not-a-number":
                rows["q"][(agent, state, action)] = (float(value),)
        policy = json.loads(client.get(base + ":policy"))
        rows["policies"][(agent,)] = (policy["version"], policy["epsilon"], policy["weights"], policy["updated_at"])
        if client.type(base + ":experiences") != b"stream":
            continue
        for entry_id, entry in client.xrange(base + ":experiences"):
            if f"{base}:experiences {entry_id.decode()}" in refused:
                continue
            values = {k.decode(): v for k, v in entry.items()}
            try:
                state_value = json.loads(values["state"])
                reward = float(values["reward"])
                action = values["action"].decode()
                assert values["done"] in (b"0", b"1") and math.isfinite(reward) and "\x00" not in action
            except (KeyError, ValueError, AssertionError):
                continue
            rows["experiences"][(agent, entry_id.decode())] = (
                state_value,
                action,
                reward,
                json.loads(values["next_state"]),
                values["done"] == b"1",
                int(values["ts"]),
            )
    return rows


def actual_rows() -> dict[str, dict[tuple[str, ...], tuple[Any, ...]]]:
    with postgres() as connection:
        agents = connection.execute(f"SELECT agent_id, name, kind, version, config FROM {SCHEMA}.agents").fetchall()
        q = connection.execute(f"SELECT agent_id, state, action, value FROM {SCHEMA}.q_values").fetchall()
        policies = connection.execute(
            f"SELECT agent_id, version, epsilon, weights, (extract(epoch from updated_at) * 1000)::bigint "
            f"FROM {SCHEMA}.policies"
        ).fetchall()
        experiences = connection.execute(
            f"SELECT agent_id, entry_id, state, action, reward, next_state, done, "
            f"(extract(epoch from ts) * 1000)::bigint FROM {SCHEMA}.experiences"
        ).fetchall()
    return {
        "agents": {(r[0],): tuple(r[1:]) for r in agents if not r[0].startswith("agent-bad")},
        "q": {(r[0], r[1], r[2]): (r[3],) for r in q},
        "policies": {(r[0],): tuple(r[1:]) for r in policies if not r[0].startswith("agent-bad")},
        "experiences": {(r[0], r[1]): tuple(r[2:]) for r in experiences},
    }


def test_the_copy_equals_redis_field_by_field_and_names_every_bad_record(fresh) -> None:
    result = run_module("agentdb_copy", copy_args())
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] and result["complete"]
    assert result["schema"]["current_version"] == 1
    # A first copy goes straight into the tables, but for the batch with a row PostgreSQL refuses (row by row).
    assert result["batches_copied_straight"] == result["batches"] - 1, result["batches"]
    verification = result["verification"]
    assert verification["equal"], verification
    assert all(table["equal"] for table in verification["tables"].values())
    rejects = [json.loads(line) for line in (STATE / "rejects.jsonl").read_text().splitlines()]
    refused = frozenset(entry["key"] for entry in rejects if entry["kind"] == "postgres_refused")
    assert refused == {PREFIX + "agent:agent-0001:experiences 9000000000003-0"}
    assert actual_rows() == expected_rows(refused)

    found = {(entry["key"], entry["kind"], entry["reason"]) for entry in rejects}
    for record, _ in redis_bad_records(PREFIX):
        assert (record.key, record.kind, record.expected_reason) in found, record
    for kind, reason in EXTRA_BAD:
        assert any(entry["kind"] == kind and entry["reason"].startswith(reason) for entry in rejects), (kind, reason)
    assert result["rejected"] == len(rejects) == len(redis_bad_records(PREFIX)) + len(EXTRA_BAD)
    assert sum(result["rejected_by_kind"].values()) == result["rejected"]
    per_agent = json.loads((STATE / "verification.json").read_text())["agents"]
    assert per_agent["agent-0000"]["experiences"]["redis_rows"] == PLAN.experiences_per_agent


def test_re_runs_change_nothing(fresh) -> None:
    assert not run_module("agentdb_copy", copy_args()).get("failed")
    again = run_module("agentdb_copy", copy_args())
    assert not again["changed"] and again["started_from"].startswith("checkpoint (complete")
    assert again["verification"]["equal"]
    fresh_start = run_module("agentdb_copy", copy_args(fresh_start=True))
    assert not fresh_start["changed"], fresh_start["changed_rows"]
    assert sum(fresh_start["loaded_this_run"].values()) > 0 and not any(fresh_start["changed_rows"].values())
    assert fresh_start["batches_copied_straight"] == 0  # every batch met its rows: staging and the upsert
    checked = run_module("agentdb_copy", copy_args(), check=True)
    assert not checked["changed"] and checked["verification"]["equal"]


def test_a_changed_value_in_postgres_is_found_and_repaired(fresh) -> None:
    assert not run_module("agentdb_copy", copy_args()).get("failed")
    with postgres() as connection:
        connection.execute(f"UPDATE {SCHEMA}.q_values SET value = value + 1 WHERE agent_id = 'agent-0003'")
    checked = run_module("agentdb_copy", copy_args(), check=True)
    assert checked["changed"] and checked["verification"]["mismatched"][0]["agent"] == "agent-0003"
    failed = run_module("agentdb_copy", copy_args())
    assert failed.get("failed") and "agent-0003" in failed["msg"]
    repaired = run_module("agentdb_copy", copy_args(fresh_start=True))
    assert not repaired.get("failed") and repaired["changed_rows"]["q_values"] == PLAN.qvalues_per_agent - 0
    assert repaired["verification"]["equal"]


def test_check_mode_counts_and_writes_nothing(fresh) -> None:
    result = run_module("agentdb_copy", copy_args(), check=True)
    assert result["changed"] and not result.get("failed")
    # the entry PostgreSQL will refuse is valid to Python, so a dry run counts it
    assert result["read"]["experiences"] == len(expected_rows()["experiences"])
    # ... and does not know yet that PostgreSQL will refuse it
    assert result["rejected"] == len(redis_bad_records(PREFIX)) + len(EXTRA_BAD) - 1
    assert result["schema"]["applied"] == [{"version": 1, "description": "agents, q_values, policies and experiences"}]
    with postgres() as connection:
        assert connection.execute("SELECT to_regnamespace(%s)", (SCHEMA,)).fetchone()[0] is None
    assert not (STATE / "checkpoint.json").exists() and not (STATE / "rejects.jsonl").exists()


def test_skip_history_then_the_history(fresh) -> None:
    result = run_module("agentdb_copy", copy_args(skip_history=True))
    assert not result.get("failed"), result.get("msg")
    assert result["verification"]["equal"] and result["verification"]["skipped_tables"] == ["experiences"]
    assert result["loaded_this_run"]["experiences"] == 0
    with postgres() as connection:
        assert connection.execute(f"SELECT count(*) FROM {SCHEMA}.experiences").fetchone()[0] == 0
        assert connection.execute(f"SELECT count(*) FROM {SCHEMA}.q_values").fetchone()[0] > 0
    full = run_module("agentdb_copy", copy_args())
    assert full["started_from"].startswith("beginning (the last copy skipped")
    assert full["verification"]["equal"] and full["loaded_this_run"]["experiences"] > 0


def test_too_many_rejects_fail_after_the_valid_records_moved(fresh) -> None:
    result = run_module("agentdb_copy", copy_args(max_reject_ratio=0.0))
    assert result.get("failed") and "above max_reject_ratio" in result["msg"]
    assert result["verification"]["equal"]


def test_kill_minus_nine_then_resume_ends_equal() -> None:
    seed_redis(SeedPlan(agent_count=30, experiences_per_agent=3000, qvalues_per_agent=50, random_seed=12))
    drop_schema()
    reset_state()
    checkpoint = STATE / "checkpoint.json"
    extra = {
        "redis_key_prefix": PREFIX,
        "migrate_agentdb_schema": SCHEMA,
        "migrate_agentdb_checkpoint_file": str(checkpoint),
        "migrate_agentdb_reject_file": str(STATE / "rejects.jsonl"),
        "migrate_agentdb_verification_file": str(STATE / "verification.json"),
        "migrate_agentdb_batch_size": 100,
        "migrate_agentdb_max_reject_ratio": 0.05,
    }
    kill_playbook_when(
        "playbooks/migrate-agentdb.yml",
        "agentdb_copy",
        json.dumps(extra),
        checkpoint,
        lambda state: state.get("loaded", {}).get("experiences", 0) >= 20000,
        timeout=180,
    )

    resumed = run_module(
        "agentdb_copy",
        copy_args(batch_size=100, checkpoint_file=str(checkpoint)),
    )
    assert not resumed.get("failed"), resumed.get("msg")
    assert resumed["started_from"].startswith("checkpoint (agent "), resumed["started_from"]
    assert resumed["loaded_this_run"]["experiences"] < 29 * 3000
    assert resumed["verification"]["equal"], resumed["verification"]
    # agent-0002's stream is replaced by a hash of the wrong type (seed_redis)
    assert resumed["verification"]["tables"]["experiences"]["postgres_rows"] == 29 * 3000
    seed_redis()


def test_the_playbook_records_the_phase_and_the_report_shows_the_verification(fresh) -> None:
    extra = {
        "redis_key_prefix": PREFIX,
        "migrate_agentdb_schema": SCHEMA,
        "migrate_agentdb_checkpoint_file": str(STATE / "checkpoint.json"),
        "migrate_agentdb_reject_file": str(STATE / "rejects.jsonl"),
        "migrate_agentdb_verification_file": str(STATE / "verification.json"),
        "migrate_agentdb_max_reject_ratio": 0.05,
        "migration_run_state_file": str(STATE / "run_state.json"),
    }
    done = run_playbook("playbooks/migrate-agentdb.yml", "-e", json.dumps(extra), callback="default")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "sandbox-redis-secret" not in done.stdout and "sandbox-postgres-secret" not in done.stdout
    phase = json.loads((STATE / "run_state.json").read_text())["phases"]["migrate_agentdb"]
    assert phase["status"] == "succeeded" and phase["result"]["verification"]["equal"]
    report = Path(STATE / "report.md")
    report_vars = {"migration_run_state_file": str(STATE / "run_state.json"), "report_file": str(report)}
    done = run_playbook("playbooks/report.yml", "-e", json.dumps(report_vars), callback="default")
    assert done.returncode == 0, done.stdout[-3000:]
    text = report.read_text()
    assert "Verification, Redis against PostgreSQL: equal" in text
    assert "| experiences |" in text
