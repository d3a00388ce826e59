"""Normalize AgentDB records read from Redis into typed rows, or reject them with a reason.

The one place that decides what a good agent, q-value, policy or experience
is. The copy and the verification both call it, so they agree on what should
be in PostgreSQL. Every value PostgreSQL could not store (NaN in JSON, a NUL
character, bytes that are not UTF-8) is caught here with a reason instead of
failing a whole batch in COPY.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
AGENT_FIELDS = ("name", "kind", "version", "created_at", "config")
EXPERIENCE_FIELDS = ("state", "action", "reward", "next_state", "done", "ts")
POLICY_FIELDS = ("version", "epsilon", "temperature", "weights", "updated_at")
SNIPPET_LENGTH = 120


@dataclass(frozen=True)
class RecordReject:
    """One Redis record that cannot move: its key (plus field or entry id), kind and reason."""

    key: str
    kind: str
    reason: str
    snippet: str = ""
    agent_id: str = ""

    @property
    def id(self) -> str:
        return self.key

    def as_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "kind": self.kind,
                "reason": self.reason,
                "snippet": self.snippet,
                "agent": self.agent_id,
            },
            ensure_ascii=False,
        )


class BadRecord(ValueError):
    """Raised inside the parsers; becomes a RecordReject with the caller's key."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class AgentRow(NamedTuple):
    """Fields in the order of the staging table, so a row is written to COPY as it is."""

    agent_id: str
    name: str
    kind: str
    version: str
    created_at: datetime
    config: str
    extra: str | None


class QValueRow(NamedTuple):
    agent_id: str
    state: str
    action: str
    value: float


class PolicyRow(NamedTuple):
    agent_id: str
    version: int
    epsilon: float
    temperature: float
    weights: list[float]
    updated_at_ms: int
    document: str


class ExperienceRow(NamedTuple):
    agent_id: str
    entry_id: str
    state: str
    action: str
    reward: float
    next_state: str
    done: bool
    ts_ms: int
    extra: str | None = None


def snippet(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= SNIPPET_LENGTH else text[: SNIPPET_LENGTH - 3] + "..."


def text(value: bytes | str, what: str) -> str:
    """Decoded text PostgreSQL can store."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRecord("not_utf8", f"{what} is not valid UTF-8") from error
    if "\x00" in value:
        raise BadRecord("nul_character", f"{what} contains a NUL character, which PostgreSQL cannot store")
    return value


def _refuse_constant(name: str) -> Any:
    raise BadRecord("json_not_finite", f"contains {name}, which JSON and PostgreSQL do not allow")


_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant)
"""One decoder for every record: json.loads with an option builds a new decoder per call."""


def json_text(value: bytes | str, what: str, kind: str) -> tuple[str, Any]:
    """The JSON text as it will be stored, and its parsed value."""
    raw = text(value, what)
    try:
        parsed = _STRICT_JSON.decode(raw)
    except BadRecord as error:
        raise BadRecord(kind, f"{what} {error.reason}") from error
    except ValueError as error:
        raise BadRecord(kind, f"{what} is not valid JSON") from error
    if "\\u0000" in raw:
        raise BadRecord("nul_character", f"{what} contains \\u0000, which PostgreSQL cannot store in jsonb")
    return raw, parsed


def finite_float(value: bytes | str, what: str, kind: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise BadRecord(kind, f"{what} is not a number") from error
    if not math.isfinite(number):
        raise BadRecord(kind, f"{what} is not finite")
    return number


def epoch_ms(value: Any, what: str, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, bytes)):
        raise BadRecord(kind, f"{what} is not an epoch-millisecond integer")
    try:
        number = int(value)
    except ValueError as error:
        raise BadRecord(kind, f"{what} is not an epoch-millisecond integer") from error
    if not -62135596800000 <= number <= 253402300799999:  # years 1 to 9999, what timestamptz holds
        raise BadRecord(kind, f"{what} is out of the timestamp range")
    return number


def iso_timestamp(value: str, what: str) -> datetime:
    """ISO 8601 with an offset; without one it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise BadRecord("agent_bad_timestamp", f"{what} is not ISO 8601") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def extra_fields(mapping: dict[str, str], known: tuple[str, ...], what: str) -> str | None:
    """Fields outside the documented layout, kept as JSON rather than dropped."""
    extra = {name: text(value, f"{what} field {name}") for name, value in mapping.items() if name not in known}
    return json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else None


def decoded_mapping(raw: dict[bytes, bytes] | dict[str, str], what: str) -> dict[str, Any]:
    """Field names decoded; values left as they are for the field parsers."""
    return {text(name, f"{what} field name"): value for name, value in raw.items()}


def parse_agent(agent_id: str, raw: dict[bytes, bytes]) -> AgentRow:
    fields = decoded_mapping(raw, "agent")
    for name in AGENT_FIELDS:
        if name not in fields or fields[name] in (b"", ""):
            raise BadRecord("agent_missing_field", f"missing field {name}")
    created_text = text(fields["created_at"], "created_at")
    config, _ = json_text(fields["config"], "config", "agent_bad_json")
    return AgentRow(
        agent_id=agent_id,
        name=text(fields["name"], "name"),
        kind=text(fields["kind"], "kind"),
        version=text(fields["version"], "version"),
        created_at=iso_timestamp(created_text, "created_at"),
        config=config,
        extra=extra_fields(fields, AGENT_FIELDS, "agent"),
    )


def parse_qvalue(agent_id: str, field_name: bytes | str, value: bytes | str) -> QValueRow:
    name = text(field_name, "q-value field")
    state, separator, action = name.rpartition("|")
    if not separator or not state or not action:
        raise BadRecord("qvalue_bad_field", "q-value field is not state|action")
    return QValueRow(agent_id, state, action, finite_float(value, "q-value", "qvalue_not_numeric"))


def parse_policy(agent_id: str, raw: bytes | str) -> PolicyRow:
    document, parsed = json_text(raw, "policy", "policy_bad_json")
    if not isinstance(parsed, dict):
        raise BadRecord("policy_bad_json", "policy is not a JSON object")
    for name in POLICY_FIELDS:
        if name not in parsed or parsed[name] is None:
            raise BadRecord("policy_missing_field", f"policy is missing field {name}")
    version = parsed["version"]
    if isinstance(version, bool) or not isinstance(version, int) or not -(2**31) <= version < 2**31:
        raise BadRecord("policy_bad_field", "policy version is not an integer")
    numbers = {}
    for name in ("epsilon", "temperature"):
        value = parsed[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRecord("policy_bad_field", f"policy {name} is not a number")
        numbers[name] = float(value)
    weights = parsed["weights"]
    if not isinstance(weights, list) or any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in weights):
        raise BadRecord("policy_bad_field", "policy weights is not a list of numbers")
    return PolicyRow(
        agent_id=agent_id,
        version=version,
        epsilon=numbers["epsilon"],
        temperature=numbers["temperature"],
        weights=[float(w) for w in weights],
        updated_at_ms=epoch_ms(parsed["updated_at"], "policy updated_at", "policy_bad_field"),
        document=document,
    )


_EXPERIENCE_KEYS = tuple(name.encode() for name in EXPERIENCE_FIELDS)
_DONE = {b"0": False, b"1": True}


def parse_experience(agent_id: str, entry_id: bytes | str, raw: dict[bytes, bytes]) -> ExperienceRow:
    """The common case (six well-formed fields, as redis-py returns them) fast; anything else thoroughly."""
    if len(raw) == 6 and isinstance(entry_id, bytes):
        try:
            state, action, reward, next_state, done, ts = (raw[key] for key in _EXPERIENCE_KEYS)
            state_text = state.decode()
            next_text = next_state.decode()
            action_text = action.decode()
            if (
                action_text
                and done in _DONE
                and "\x00" not in state_text
                and "\x00" not in next_text
                and "\x00" not in action_text
                and "\\u0000" not in state_text
                and "\\u0000" not in next_text
            ):
                orjson.loads(state_text)  # validates only, in C; anything it refuses takes the thorough path
                orjson.loads(next_text)
                number = float(reward)
                moment = int(ts)
                if math.isfinite(number) and -62135596800000 <= moment <= 253402300799999:
                    entry, finished = entry_id.decode(), _DONE[done]
                    return ExperienceRow(agent_id, entry, state_text, action_text, number, next_text, finished, moment)
        except (KeyError, ValueError, AttributeError):
            pass  # the thorough path below names the problem
    return _parse_experience_thoroughly(agent_id, entry_id, raw)


def _parse_experience_thoroughly(agent_id: str, entry_id: bytes | str, raw: dict[bytes, bytes]) -> ExperienceRow:
    fields = decoded_mapping(raw, "experience")
    for name in EXPERIENCE_FIELDS:
        if name not in fields:
            raise BadRecord("experience_missing_field", f"missing field {name}")
    state, _ = json_text(fields["state"], "state", "experience_bad_json")
    next_state, _ = json_text(fields["next_state"], "next_state", "experience_bad_json")
    done = fields["done"]
    if done not in (b"0", b"1", "0", "1"):
        raise BadRecord("experience_bad_done", "done is not 0 or 1")
    action = text(fields["action"], "action")
    if not action:
        raise BadRecord("experience_missing_field", "missing field action")
    return ExperienceRow(
        agent_id=agent_id,
        entry_id=text(entry_id, "entry id"),
        state=state,
        action=action,
        reward=finite_float(fields["reward"], "reward", "experience_reward_not_numeric"),
        next_state=next_state,
        done=done in (b"1", "1"),
        ts_ms=epoch_ms(fields["ts"], "ts", "experience_bad_ts"),
        extra=extra_fields(fields, EXPERIENCE_FIELDS, "experience"),
    )


def ms_to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def canonical_json(value: Any) -> Any:
    """A JSON value in a form that reads the same before and after jsonb.

    jsonb keeps numbers as decimals, so 1e2 and 100.0 come back as 100 and 1.5e300
    as a 301-digit integer: numbers compare as doubles, integral ones below 2^53 as ints.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return str(value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else repr(number)
    if isinstance(value, list):
        return [canonical_json(item) for item in value]
    if isinstance(value, dict):
        return {key: canonical_json(item) for key, item in value.items()}
    return value


def row_digest(values: tuple[Any, ...]) -> int:
    """64 bits of BLAKE2b over a canonical form; summed per agent, so order does not matter."""
    text = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    encoded = text.encode("utf-8", "surrogatepass")  # JSON may hold an escaped lone surrogate
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")


def parsed_json(value: str | None) -> Any:
    return None if value is None else canonical_json(json.loads(value))


def agent_values(row: AgentRow) -> tuple[Any, ...]:
    created = row.created_at.astimezone(UTC).isoformat()
    return (row.agent_id, row.name, row.kind, row.version, created, parsed_json(row.config), parsed_json(row.extra))


def qvalue_values(row: QValueRow) -> tuple[Any, ...]:
    return (row.agent_id, row.state, row.action, repr(row.value))


def policy_values(row: PolicyRow) -> tuple[Any, ...]:
    weights = [repr(w) for w in row.weights]
    return (
        row.agent_id,
        row.version,
        repr(row.epsilon),
        repr(row.temperature),
        weights,
        row.updated_at_ms,
        parsed_json(row.document),
    )


def experience_values(row: ExperienceRow) -> tuple[Any, ...]:
    return (
        row.agent_id,
        row.entry_id,
        parsed_json(row.state),
        row.action,
        repr(row.reward),
        parsed_json(row.next_state),
        row.done,
        row.ts_ms,
        parsed_json(row.extra),
    )
