"""Extract: the AgentDB layout in Redis, read agent by agent without blocking the server.

Agents come from the agents SET through SSCAN; stray keys under the prefix are
found with SCAN (never KEYS); q-values are read with HSCAN once a hash is big;
experience streams are read in XRANGE ranges of ``batch_size`` entries from an
exclusive start, so a resume continues after the last committed entry id. Each
key's type is checked first: a key of the wrong type is rejected, not misread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .agentdb_records import (
    AgentRow,
    BadRecord,
    ExperienceRow,
    PolicyRow,
    QValueRow,
    RecordReject,
    parse_agent,
    parse_experience,
    parse_policy,
    parse_qvalue,
    snippet,
)
from .errors import TerminalError, TransientError
from .retry import RetryPolicy, with_retries

T = TypeVar("T")
HGETALL_LIMIT = 5000  # hashes up to this many fields are read in one call, bigger ones with HSCAN


@dataclass(frozen=True)
class AgentLayout:
    """Where the records live; ``{prefix}`` and ``{id}`` are filled in."""

    prefix: str = "agentdb:"
    agents_set: str = "{prefix}agents"
    agent_hash: str = "{prefix}agent:{id}"
    qvalues_hash: str = "{prefix}agent:{id}:qvalues"
    policy_string: str = "{prefix}agent:{id}:policy"
    experiences_stream: str = "{prefix}agent:{id}:experiences"

    @classmethod
    def from_mapping(cls, prefix: str, patterns: dict[str, str] | None) -> AgentLayout:
        known = {"agents_set", "agent_hash", "qvalues_hash", "policy_string", "experiences_stream"}
        unknown = set(patterns or {}) - known
        if unknown:
            raise TerminalError(f"unknown key patterns {sorted(unknown)}; known: {sorted(known)}")
        layout = cls(prefix=prefix, **{k: v for k, v in (patterns or {}).items() if v})
        for name in known - {"agents_set"}:
            if "{id}" not in getattr(layout, name):
                raise TerminalError(f"key pattern {name} must contain {{id}}")
        return layout

    def key(self, pattern: str, agent_id: str = "") -> str:
        return pattern.replace("{prefix}", self.prefix).replace("{id}", agent_id)

    def agent_keys(self, agent_id: str) -> dict[str, str]:
        return {
            "agent": self.key(self.agent_hash, agent_id),
            "qvalues": self.key(self.qvalues_hash, agent_id),
            "policy": self.key(self.policy_string, agent_id),
            "experiences": self.key(self.experiences_stream, agent_id),
        }


EXPECTED_TYPES = {"agent": "hash", "qvalues": "hash", "policy": "string", "experiences": "stream"}


@dataclass
class AgentHead:
    """An agent's row, q-values and policy, plus what of them was rejected."""

    agent_id: str
    agent: AgentRow | None = None
    qvalues: list[QValueRow] = field(default_factory=list)
    policy: PolicyRow | None = None
    rejects: list[RecordReject] = field(default_factory=list)
    has_experiences: bool = False
    experience_count: int = 0
    experiences_key: str = ""


@dataclass
class Inventory:
    """What the copy will walk through: the agents in order, stream lengths and stray keys."""

    agent_ids: list[str]
    experience_counts: dict[str, int]
    stray_keys: list[str]
    bad_ids: list[tuple[str, str]] = field(default_factory=list)

    @property
    def experiences(self) -> int:
        return sum(self.experience_counts.values())


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def agent_id_problem(raw: bytes) -> str | None:
    """Why an id from the agents set cannot name rows in PostgreSQL, or None."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "agent id is not valid UTF-8"
    if not decoded:
        return "agent id is empty"
    if "\x00" in decoded:
        return "agent id contains a NUL character"
    return None


class RedisAgentSource:
    """Reads the AgentDB layout; every call that can fail on the network is retried."""

    def __init__(self, client: Any, layout: AgentLayout, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.layout = layout
        self.retry = retry or RetryPolicy()
        self.retries = 0

    def _call(self, operation: Callable[[], T]) -> T:
        import redis as redis_lib

        def attempt() -> T:
            try:
                return operation()
            except (redis_lib.ConnectionError, redis_lib.TimeoutError) as error:
                raise TransientError(f"Redis read failed: {error}") from error

        def count(_attempt: int, _error: TransientError, _delay: float) -> None:
            self.retries += 1

        return with_retries(attempt, self.retry, on_retry=count)

    def inventory(self) -> Inventory:
        """Agent ids (SSCAN, sorted), their stream lengths, and keys under the prefix that belong to no agent."""
        agents_key = self.layout.key(self.layout.agents_set)
        key_type = _decode(self._call(lambda: self.client.type(agents_key)))
        if key_type not in ("set", "none"):
            raise TerminalError(f"{agents_key} is a {key_type}, expected the set of agent ids")
        members = self._call(lambda: list(self.client.sscan_iter(agents_key, count=1000)))
        bad_ids = sorted((_decode(m), problem) for m in members if (problem := agent_id_problem(m)))
        ids = sorted({m.decode("utf-8") for m in members if not agent_id_problem(m)})
        expected = {agents_key}
        for agent_id in ids:
            expected.update(self.layout.agent_keys(agent_id).values())
        stray = sorted(
            key for key in (_decode(k) for k in self._call(lambda: list(self._scan()))) if key not in expected
        )
        counts: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            lengths = self._call(lambda chunk=chunk: self._stream_lengths(chunk))
            counts.update(zip(chunk, lengths, strict=True))
        return Inventory(ids, counts, stray, bad_ids)

    def _scan(self) -> Iterator[bytes]:
        pattern = self.layout.prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
        pattern = pattern.replace("[", "\\[") + "*"
        return self.client.scan_iter(match=pattern, count=1000)

    def _stream_lengths(self, agent_ids: list[str]) -> list[int]:
        pipe = self.client.pipeline(transaction=False)
        for agent_id in agent_ids:
            pipe.type(self.layout.key(self.layout.experiences_stream, agent_id))
        types = [_decode(t) for t in pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        for agent_id, key_type in zip(agent_ids, types, strict=True):
            if key_type == "stream":
                pipe.xlen(self.layout.key(self.layout.experiences_stream, agent_id))
        lengths = iter(pipe.execute())
        return [next(lengths) if key_type == "stream" else 0 for key_type in types]

    def head(self, agent_id: str) -> AgentHead:
        """The agent, its q-values and its policy, each validated."""
        keys = self.layout.agent_keys(agent_id)
        head = AgentHead(agent_id, experiences_key=keys["experiences"])
        types = self._call(lambda: self._types(keys))
        wrong = {name: found for name, found in types.items() if found not in (EXPECTED_TYPES[name], "none")}
        for name, found in wrong.items():
            head.rejects.append(
                RecordReject(
                    keys[name], "wrong_type", f"key is a {found}, expected a {EXPECTED_TYPES[name]}", agent_id=agent_id
                )
            )
        agent_raw, policy_raw = self._call(lambda: self._agent_and_policy(keys, types))
        if types["agent"] == "none":
            head.rejects.append(
                RecordReject(
                    keys["agent"], "agent_missing", "agent listed in the agents set has no hash", agent_id=agent_id
                )
            )
        elif "agent" not in wrong:
            try:
                head.agent = parse_agent(agent_id, agent_raw)
            except BadRecord as bad:
                head.rejects.append(
                    RecordReject(keys["agent"], bad.kind, bad.reason, snippet(_preview(agent_raw)), agent_id)
                )
        if head.agent is None:
            self._reject_children(head, keys, types)
            return head
        if types["qvalues"] == "hash":
            for name, value in self._call(lambda: self._qvalues(keys["qvalues"])):
                try:
                    head.qvalues.append(parse_qvalue(agent_id, name, value))
                except BadRecord as bad:
                    key = f"{keys['qvalues']} {_decode(name)}"
                    head.rejects.append(RecordReject(key, bad.kind, bad.reason, snippet(value), agent_id))
        if types["policy"] == "string" and policy_raw is not None:
            try:
                head.policy = parse_policy(agent_id, policy_raw)
            except BadRecord as bad:
                head.rejects.append(RecordReject(keys["policy"], bad.kind, bad.reason, snippet(policy_raw), agent_id))
        head.has_experiences = types["experiences"] == "stream"
        return head

    def _reject_children(self, head: AgentHead, keys: dict[str, str], types: dict[str, str]) -> None:
        """An agent that cannot move takes its records with it; each key is listed with how much it held."""
        reason = head.rejects[0].reason if head.rejects else "agent rejected"
        for name in ("qvalues", "policy", "experiences"):
            if types[name] != EXPECTED_TYPES[name]:
                continue
            size = self._call(lambda name=name: self._size(keys[name], types[name]))
            head.rejects.append(
                RecordReject(
                    keys[name],
                    "agent_rejected",
                    f"its agent {head.agent_id} cannot move ({reason})",
                    f"{size} records",
                    head.agent_id,
                )
            )

    def _size(self, key: str, key_type: str) -> int:
        if key_type == "hash":
            return int(self.client.hlen(key))
        if key_type == "stream":
            return int(self.client.xlen(key))
        return 1

    def _types(self, keys: dict[str, str]) -> dict[str, str]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys.values():
            pipe.type(key)
        return {name: _decode(found) for name, found in zip(keys, pipe.execute(), strict=True)}

    def _agent_and_policy(self, keys: dict[str, str], types: dict[str, str]) -> tuple[dict[bytes, bytes], bytes | None]:
        pipe = self.client.pipeline(transaction=False)
        if types["agent"] == "hash":
            pipe.hgetall(keys["agent"])
        if types["policy"] == "string":
            pipe.get(keys["policy"])
        replies = iter(pipe.execute())
        agent_raw = next(replies) if types["agent"] == "hash" else {}
        policy_raw = next(replies) if types["policy"] == "string" else None
        return agent_raw, policy_raw

    def _qvalues(self, key: str) -> list[tuple[bytes, bytes]]:
        if int(self.client.hlen(key)) <= HGETALL_LIMIT:
            return list(self.client.hgetall(key).items())
        return list(self.client.hscan_iter(key, count=1000))

    def experiences(
        self, agent_id: str, key: str, after: str, count: int
    ) -> Iterator[tuple[list[ExperienceRow], list[RecordReject], str]]:
        """Chunks of up to ``count`` entries after entry id ``after`` ("" for the start), with the last id read."""
        start = f"({after}" if after else "-"
        while True:
            entries = self._call(lambda start=start: self.client.xrange(key, min=start, max="+", count=count))
            if not entries:
                return
            rows: list[ExperienceRow] = []
            rejects: list[RecordReject] = []
            for entry_id, fields in entries:
                try:
                    rows.append(parse_experience(agent_id, entry_id, fields))
                except BadRecord as bad:
                    entry = _decode(entry_id)
                    rejects.append(
                        RecordReject(f"{key} {entry}", bad.kind, bad.reason, snippet(_preview(fields)), agent_id)
                    )
            last = _decode(entries[-1][0])
            yield rows, rejects, last
            if len(entries) < count:
                return
            start = f"({last}"


def _preview(fields: dict[bytes, bytes]) -> str:
    return ", ".join(f"{_decode(k)}={_decode(v)}" for k, v in fields.items())
