from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from ansible.module_utils.hybrid_migration.engine_control import (
    MODES,
    READ_SOURCE,
    WRITES_TO_MILVUS,
    Acknowledgements,
    InstanceState,
    ModeRecord,
    acknowledgements,
    check_mode_name,
    config_digest,
    skipped_modes,
)
from ansible.module_utils.hybrid_migration.errors import TerminalError

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
RECORD = ModeRecord(mode="shadow", generation=5, previous_mode="dual_write", changed_at=T0, changed_by="ansible")


def instance(
    name: str,
    mode: str | None = "shadow",
    generation: int | None = 5,
    after_ms: float | None = 100.0,
    live: bool = True,
) -> InstanceState:
    acknowledged = T0 + timedelta(milliseconds=after_ms) if after_ms is not None else None
    return InstanceState(name, f"http://{name}:8080", mode, generation, acknowledged, 0.5, live)


# Mode names


@pytest.mark.parametrize("mode", MODES)
def test_check_mode_name_accepts_known_modes(mode: str) -> None:
    assert check_mode_name(mode) == mode


@pytest.mark.parametrize("mode", ["Hybrid", "milvus_only", "", "neo4j-only"])
def test_check_mode_name_refuses_others(mode: str) -> None:
    with pytest.raises(TerminalError) as raised:
        check_mode_name(mode)
    assert str(raised.value) == (
        f"unknown storage mode {mode!r}; expected one of neo4j_only, dual_write, shadow, hybrid"
    )


def test_mode_tables_agree() -> None:
    assert set(READ_SOURCE) == set(MODES)
    assert [mode for mode in MODES if READ_SOURCE[mode] == "milvus"] == ["hybrid"]
    assert "neo4j_only" not in WRITES_TO_MILVUS
    assert set(MODES) - WRITES_TO_MILVUS == {"neo4j_only"}


@pytest.mark.parametrize(
    ("current", "target", "skipped"),
    [
        ("neo4j_only", "hybrid", ["dual_write", "shadow"]),
        ("neo4j_only", "shadow", ["dual_write"]),
        ("dual_write", "hybrid", ["shadow"]),
        ("neo4j_only", "dual_write", []),
        ("dual_write", "shadow", []),
        ("shadow", "hybrid", []),
        ("hybrid", "hybrid", []),
        ("hybrid", "neo4j_only", []),
        ("hybrid", "dual_write", []),
        ("shadow", "neo4j_only", []),
    ],
)
def test_skipped_modes(current: str, target: str, skipped: list[str]) -> None:
    assert skipped_modes(current, target) == skipped


def test_config_digest() -> None:
    text = "storage_mode: shadow\nmode_generation: 3\n"
    digest = config_digest(text)
    assert digest == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert len(digest) == 16
    assert int(digest, 16) >= 0
    assert config_digest(text) == digest
    assert config_digest(text.replace("3", "4")) != digest


# Records


def test_mode_record_defaults_and_as_dict() -> None:
    assert ModeRecord().as_dict() == {
        "mode": "neo4j_only",
        "generation": 0,
        "previous_mode": None,
        "changed_at": None,
        "changed_by": None,
    }
    assert RECORD.as_dict()["changed_at"] == "2025-03-01T12:00:00+00:00"


def test_instance_state_as_dict() -> None:
    state = InstanceState("a", "http://a:8080", "shadow", 5, T0, 0.12345, True)
    assert state.as_dict() == {
        "instance_id": "a",
        "address": "http://a:8080",
        "mode": "shadow",
        "generation": 5,
        "acknowledged_at": "2025-03-01T12:00:00+00:00",
        "heartbeat_age_seconds": 0.123,
        "live": True,
    }
    assert InstanceState("b", None, None, None, None, 0.0, False).as_dict()["acknowledged_at"] is None


# acknowledgements


def test_acknowledgements_split_live_instances() -> None:
    instances = [
        instance("a", after_ms=250),
        instance("b", generation=6, after_ms=1500),
        instance("c", generation=4),
        instance("d", mode="dual_write"),
        instance("e", mode=None, generation=None, after_ms=None),
        instance("f", mode="neo4j_only", generation=1, live=False),
        instance("g", after_ms=None),
    ]
    state = acknowledgements(RECORD, instances)
    assert (state.generation, state.mode) == (5, "shadow")
    assert state.acknowledged == [
        {"instance_id": "a", "address": "http://a:8080", "propagation_ms": 250.0},
        {"instance_id": "b", "address": "http://b:8080", "propagation_ms": 1500.0},
        {"instance_id": "g", "address": "http://g:8080", "propagation_ms": 0.0},
    ]
    assert state.waiting == ["c", "d", "e"]
    assert state.complete is False
    assert state.slowest_propagation_ms == 1500.0


def test_acknowledgements_dead_instances_are_ignored() -> None:
    state = acknowledgements(RECORD, [instance("a", after_ms=40), instance("z", generation=1, live=False)])
    assert [item["instance_id"] for item in state.acknowledged] == ["a"]
    assert state.waiting == []
    assert state.complete is True
    assert state.slowest_propagation_ms == 40.0


def test_acknowledgements_propagation_rounded_to_tenth_of_ms() -> None:
    state = acknowledgements(RECORD, [instance("a", after_ms=12.3456)])
    assert state.acknowledged[0]["propagation_ms"] == 12.3


def test_acknowledgements_without_changed_at_report_zero() -> None:
    record = ModeRecord(mode="shadow", generation=5)
    state = acknowledgements(record, [instance("a", after_ms=900)])
    assert state.acknowledged[0]["propagation_ms"] == 0.0


def test_acknowledgements_of_no_instances() -> None:
    state = acknowledgements(RECORD, [])
    assert state.complete is True
    assert state.acknowledged == []
    assert state.slowest_propagation_ms == 0.0


def test_acknowledgements_of_the_initial_record() -> None:
    # A fleet never flipped: generation 0, neo4j_only; an instance that registered but never acknowledged waits.
    state = acknowledgements(ModeRecord(), [instance("a", mode=None, generation=None, after_ms=None)])
    assert state.waiting == ["a"]
    state = acknowledgements(ModeRecord(), [instance("a", mode="neo4j_only", generation=0)])
    assert state.complete is True


def test_acknowledgements_dataclass_properties() -> None:
    state = Acknowledgements(generation=2, mode="hybrid")
    assert state.complete is True
    assert state.slowest_propagation_ms == 0.0
    state.waiting.append("x")
    state.acknowledged += [{"propagation_ms": 3.0}, {"propagation_ms": 7.5}, {"propagation_ms": 1.0}]
    assert state.complete is False
    assert state.slowest_propagation_ms == 7.5
