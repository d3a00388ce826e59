"""What a good AgentDB record is, and the reason each bad one gets."""

from __future__ import annotations

from datetime import datetime

import pytest
from ansible.module_utils.hybrid_migration.agentdb_load import (
    copy_text,
    copy_timestamp,
    decode_field,
    encode_rows,
    row_key,
)
from ansible.module_utils.hybrid_migration.agentdb_records import (
    BadRecord,
    canonical_json,
    datetime_to_ms,
    ms_to_datetime,
    parse_agent,
    parse_experience,
    parse_policy,
    parse_qvalue,
)
from ansible.module_utils.hybrid_migration.agentdb_source import AgentLayout

GOOD = {b"state": b'{"s": 1}', b"action": b"play", b"reward": b"0.25", b"next_state": b"{}", b"done": b"1", b"ts": b"5"}


def test_a_good_experience_in_both_paths_gives_the_same_row() -> None:
    fast = parse_experience("a", b"1-0", GOOD)
    thorough = parse_experience("a", "1-0", {k.decode(): v for k, v in GOOD.items()})
    assert fast == thorough
    assert (fast.reward, fast.done, fast.ts_ms, fast.extra) == (0.25, True, 5, None)


@pytest.mark.parametrize(
    ("change", "kind", "reason"),
    [
        ({b"state": b"{not json"}, "experience_bad_json", "state is not valid JSON"),
        ({b"reward": b"lots"}, "experience_reward_not_numeric", "reward is not a number"),
        ({b"reward": b"inf"}, "experience_reward_not_numeric", "reward is not finite"),
        ({b"done": b"maybe"}, "experience_bad_done", "done is not 0 or 1"),
        ({b"ts": b"soon"}, "experience_bad_ts", "ts is not an epoch-millisecond integer"),
        (
            {b"state": b'{"x": NaN}'},
            "experience_bad_json",
            "state contains NaN, which JSON and PostgreSQL do not allow",
        ),
        ({b"action": b"a\x00b"}, "nul_character", "action contains a NUL character, which PostgreSQL cannot store"),
        ({b"state": b"\xff"}, "not_utf8", "state is not valid UTF-8"),
    ],
)
def test_each_bad_experience_gets_its_reason(change, kind, reason) -> None:
    with pytest.raises(BadRecord) as caught:
        parse_experience("a", b"1-0", {**GOOD, **change})
    assert (caught.value.kind, caught.value.reason) == (kind, reason)


def test_a_missing_field_is_named_and_extra_fields_are_kept() -> None:
    with pytest.raises(BadRecord, match="missing field action"):
        parse_experience("a", b"1-0", {k: v for k, v in GOOD.items() if k != b"action"})
    row = parse_experience("a", b"1-0", {**GOOD, b"note": b"x"})
    assert row.extra == '{"note": "x"}'


def test_agents_qvalues_and_policies() -> None:
    agent = {b"name": b"n", b"kind": b"dqn", b"version": b"1", b"created_at": b"2025-01-01T00:00:00", b"config": b"{}"}
    assert parse_agent("a", agent).created_at.tzinfo is not None  # no offset: taken as UTC
    with pytest.raises(BadRecord, match="missing field name"):
        parse_agent("a", {k: v for k, v in agent.items() if k != b"name"})
    with pytest.raises(BadRecord, match="created_at is not ISO 8601"):
        parse_agent("a", {**agent, b"created_at": b"yesterday"})
    assert parse_qvalue("a", b"s|1|play", b"0.5") == ("a", "s|1", "play", 0.5)
    with pytest.raises(BadRecord, match="q-value field is not state\\|action"):
        parse_qvalue("a", b"nothing", b"0.5")
    policy = b'{"version": 2, "epsilon": 0.1, "temperature": 1, "weights": [1, 2.5], "updated_at": 7}'
    assert parse_policy("a", policy).weights == [1.0, 2.5]
    with pytest.raises(BadRecord, match="policy is missing field weights"):
        parse_policy("a", b'{"version": 2, "epsilon": 0.1, "temperature": 1, "updated_at": 7}')
    with pytest.raises(BadRecord, match="policy version is not an integer"):
        parse_policy("a", policy.replace(b'"version": 2', b'"version": "2"'))


def test_json_numbers_compare_the_way_jsonb_returns_them() -> None:
    assert canonical_json({"a": 1e2, "b": [100.0, 0.5]}) == canonical_json({"a": 100, "b": [100, 0.5]})
    assert canonical_json(1.5e300) == canonical_json(int(1.5e300))
    assert datetime_to_ms(ms_to_datetime(1735689600123)) == 1735689600123


def test_copy_payload_escapes_and_names_rows() -> None:
    row = parse_experience("ag\tent", b"1-0", {**GOOD, b"state": b'{"t": "a\\\\b"}'})
    payload = encode_rows("experiences", [row])
    assert payload.count(b"\n") == 1 and b"ag\\tent" in payload
    assert decode_field(copy_text("a\\b\tc\nd")) == "a\\b\tc\nd"
    key, agent = row_key("experiences", payload.rstrip(b"\n"), AgentLayout().agent_keys)
    assert (key, agent) == ("agentdb:agent:ag\tent:experiences 1-0", "ag\tent")


@pytest.mark.parametrize("epoch_ms", [0, 5, 1735689600123, -1, -62135596800000, 253402300799999, 951782400999])
def test_copy_timestamps_are_the_utc_instant_of_the_epoch_milliseconds(epoch_ms: int) -> None:
    text = copy_timestamp(epoch_ms)
    assert text == copy_timestamp(epoch_ms)  # the cached second gives the same text
    moment = datetime.strptime(text.replace("+00", "+0000"), "%Y-%m-%d %H:%M:%S.%f%z")
    assert datetime_to_ms(moment) == epoch_ms


def test_key_patterns_must_name_the_agent() -> None:
    layout = AgentLayout.from_mapping("p:", {"experiences_stream": "{prefix}{id}:replay"})
    assert layout.agent_keys("x")["experiences"] == "p:x:replay"
    with pytest.raises(Exception, match="must contain"):
        AgentLayout.from_mapping("p:", {"policy_string": "{prefix}policy"})
