"""Flipping the engine fleet's storage mode and proving every instance followed.

Two ways are handled here, chosen by inventory: the live control record (no restart; each
instance acknowledges the new generation) and a config file plus a reload command on plain
hosts (each instance reports the digest of the file it applied). The Kubernetes way (ConfigMap
patch and rolling restart) is plain kubernetes.core tasks in the ``engine_mode`` role.

In both ways a flip that not every live instance acknowledges within the timeout is undone:
the previous mode goes back and the error names the instances that did not follow.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .engine_control import (
    READ_SOURCE,
    ControlRecord,
    InstanceState,
    check_mode_name,
    config_digest,
    skipped_modes,
    wait_for_acknowledgements,
)
from .engine_metrics import get_json, similar_url
from .errors import TerminalError, TransientError


class ModeSwitchFailed(TerminalError):
    """A flip was refused or not acknowledged; ``result`` says what happened and what was put back."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class SwitchOptions:
    """What to flip to and how patiently; see the engine_mode module for each option."""

    mode: str
    timeout: float = 30.0
    liveness_seconds: float = 5.0
    min_instances: int = 1
    allow_skip: bool = False
    changed_by: str = "ansible"
    check_mode: bool = False


@dataclass
class SwitchResult:
    changed: bool = False
    previous_mode: str = ""
    mode: str = ""
    generation: int | None = None
    instances: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    slowest_propagation_ms: float = 0.0
    seconds: float = 0.0
    started_epoch_ms: int = 0
    reverted: bool = False
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "diff": {"before": f"storage_mode: {self.previous_mode}\n", "after": f"storage_mode: {self.mode}\n"},
        }


def refuse_skip(current: str, target: str, allow_skip: bool) -> None:
    """Refuse a forward flip that jumps over modes, unless told to.

    Raises:
        TerminalError: it would skip, for instance neo4j_only -> hybrid without dual_write.
    """
    skipped = skipped_modes(current, target)
    if not skipped or allow_skip:
        return
    if "dual_write" in skipped:
        why = (
            "writes made while the engine was not dual-writing are not in Milvus; run dual-write.yml, "
            "migrate-embeddings.yml (its catch-up copies them), validate.yml and shadow.yml first"
        )
    else:
        why = "Milvus's answers have not been compared with Neo4j's; run shadow.yml under traffic first"
    raise TerminalError(
        f"refusing to flip {current} -> {target}: it skips {', '.join(skipped)}. {why}, or set allow_skip (force)"
    )


def switch_by_control_record(control: ControlRecord, options: SwitchOptions) -> SwitchResult:
    """Flip the fleet through the control record; wait for every live instance, else revert.

    Raises:
        TerminalError: the flip was refused before writing (skip, too few instances).
        ModeSwitchFailed: an instance did not acknowledge; the previous mode was put back.
    """
    target = check_mode_name(options.mode)
    current = control.current()
    instances = control.instances(options.liveness_seconds)
    result = SwitchResult(previous_mode=current.mode, mode=target, generation=current.generation)
    result.instances = [instance.as_dict() for instance in instances]
    live = [instance for instance in instances if instance.live]
    if target == current.mode:
        state = wait_for_acknowledgements(
            control, current, 0 if options.check_mode else options.timeout, options.liveness_seconds
        )
        result.acknowledged = state.acknowledged
        if state.waiting:
            raise ModeSwitchFailed(
                f"the record says {target} (generation {current.generation}) but {', '.join(state.waiting)} "
                f"still serve another mode after {state.seconds:.1f} s",
                result.as_dict(),
            )
        result.message = f"already {target}: {len(live)} live instance(s) serve generation {current.generation}"
        return result
    if options.check_mode:
        result.changed = True
        result.message = f"would flip {current.mode} -> {target} on {len(live)} live instance(s): {_names(live)}"
        try:
            refuse_skip(current.mode, target, options.allow_skip)
        except TerminalError as refusal:
            # A dry run of the whole migration plans each flip before the earlier ones happened.
            result.message += f" (if run now: {refusal})"
        return result
    refuse_skip(current.mode, target, options.allow_skip)
    if len(live) < options.min_instances:
        raise TerminalError(
            f"refusing to flip {current.mode} -> {target}: {len(live)} live engine instance(s) "
            f"(heartbeat within {options.liveness_seconds:g} s), min_instances is {options.min_instances}; "
            f"registered: {_names(instances) or 'none'}"
        )
    result.changed = True
    started = time.monotonic()
    result.started_epoch_ms = int(time.time() * 1000)
    record = control.set_mode(target, options.changed_by)
    result.generation = record.generation
    state = wait_for_acknowledgements(control, record, options.timeout, options.liveness_seconds)
    result.acknowledged = state.acknowledged
    result.slowest_propagation_ms = state.slowest_propagation_ms
    result.seconds = round(time.monotonic() - started, 3)
    result.instances = [instance.as_dict() for instance in control.instances(options.liveness_seconds)]
    if state.waiting:
        revert = control.set_mode(current.mode, f"{options.changed_by} (revert)")
        back = wait_for_acknowledgements(control, revert, options.timeout, options.liveness_seconds)
        result.reverted, result.mode, result.generation = True, current.mode, revert.generation
        raise ModeSwitchFailed(
            f"{', '.join(state.waiting)} did not acknowledge {target} within {options.timeout:g} s; "
            f"put {current.mode} back (generation {revert.generation}, "
            + (
                "acknowledged by every live instance)"
                if back.complete
                else f"still waiting for {', '.join(back.waiting)})"
            ),
            result.as_dict(),
        )
    result.message = (
        f"{current.mode} -> {target}: {len(state.acknowledged)} instance(s) acknowledged generation "
        f"{record.generation}, slowest after {state.slowest_propagation_ms:.0f} ms"
    )
    return result


def _names(instances: list[InstanceState]) -> str:
    return ", ".join(instance.instance_id for instance in instances)


def config_file_text(mode: str, generation: int) -> str:
    return (
        "# Written by the engine_mode module; the engine reads it at start and on reload.\n"
        f"storage_mode: {mode}\nmode_generation: {generation}\n"
    )


def read_config_file(path: Path) -> tuple[str, int]:
    """The mode and generation in an engine config file; neo4j_only and 0 when there is none."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return "neo4j_only", 0
    except (OSError, yaml.YAMLError) as error:
        raise TerminalError(f"engine config file {path} is unreadable: {error}") from error
    if not isinstance(data, dict):
        raise TerminalError(f"engine config file {path} is not a mapping with storage_mode")
    try:
        return check_mode_name(str(data.get("storage_mode", "neo4j_only"))), int(data.get("mode_generation", 0))
    except (TypeError, ValueError) as error:
        raise TerminalError(f"engine config file {path}: mode_generation is not a number ({error})") from error


@dataclass
class ConfigFileFleet:
    """Plain hosts: a config file, a reload command and the instances' addresses to confirm with."""

    path: Path
    reload_command: list[str]
    endpoints: list[str]
    request_timeout: float = 2.0
    run: Callable[..., Any] = subprocess.run

    def write(self, mode: str, generation: int) -> str:
        from .run_state import write_atomically

        text = config_file_text(mode, generation)
        previous = self.path.read_text(encoding="utf-8") if self.path.exists() else None
        write_atomically(self.path, text, mode=0o644)
        if self.reload_command:
            completed = self.run(self.reload_command, capture_output=True, text=True, timeout=60, check=False)
            if completed.returncode != 0:
                # Put the old file back, so a later restart does not switch mode unchecked.
                if previous is None:
                    self.path.unlink(missing_ok=True)
                else:
                    write_atomically(self.path, previous, mode=0o644)
                raise TerminalError(
                    f"reload command {' '.join(self.reload_command)} exited {completed.returncode}: "
                    f"{(completed.stderr or completed.stdout).strip()[:300]}"
                )
        return config_digest(text)

    def waiting(self, mode: str, digest: str) -> list[str]:
        behind = []
        for endpoint in self.endpoints:
            try:
                status, body = get_json(f"{endpoint.rstrip('/')}/mode", self.request_timeout)
            except TransientError:
                behind.append(endpoint)
                continue
            if status != 200 or body.get("mode") != mode or body.get("config_digest") != digest:
                behind.append(endpoint)
        return behind

    def wait(self, mode: str, digest: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            behind = self.waiting(mode, digest)
            if not behind or time.monotonic() >= deadline:
                return behind
            time.sleep(0.1)


def switch_by_config_file(fleet: ConfigFileFleet, options: SwitchOptions) -> SwitchResult:
    """Rewrite the config file, reload, and wait for every endpoint to serve it; else restore and reload.

    Raises:
        TerminalError: refused before writing.
        ModeSwitchFailed: an endpoint did not follow; the previous file was restored.
    """
    target = check_mode_name(options.mode)
    current, generation = read_config_file(fleet.path)
    result = SwitchResult(previous_mode=current, mode=target, generation=generation)
    result.instances = [{"address": endpoint} for endpoint in fleet.endpoints]
    if target == current:
        result.message = f"already {target} in {fleet.path}"
        return result
    if options.check_mode:
        result.changed = True
        result.message = (
            f"would write storage_mode: {target} to {fleet.path} and reload {len(fleet.endpoints)} instance(s)"
        )
        try:
            refuse_skip(current, target, options.allow_skip)
        except TerminalError as refusal:
            result.message += f" (if run now: {refusal})"
        return result
    refuse_skip(current, target, options.allow_skip)
    if len(fleet.endpoints) < options.min_instances:
        raise TerminalError(
            f"{len(fleet.endpoints)} engine endpoint(s) given, min_instances is {options.min_instances}"
        )
    result.changed = True
    if options.check_mode:
        result.message = (
            f"would write storage_mode: {target} to {fleet.path} and reload {len(fleet.endpoints)} instance(s)"
        )
        return result
    started = time.monotonic()
    result.started_epoch_ms = int(time.time() * 1000)
    digest = fleet.write(target, generation + 1)
    behind = fleet.wait(target, digest, options.timeout)
    result.seconds = round(time.monotonic() - started, 3)
    result.generation = generation + 1
    result.acknowledged = [{"address": e, "propagation_ms": None} for e in fleet.endpoints if e not in behind]
    if behind:
        fleet.write(current, generation + 2)
        result.reverted, result.mode, result.generation = True, current, generation + 2
        raise ModeSwitchFailed(
            f"{', '.join(behind)} did not serve {target} within {options.timeout:g} s; restored {current} in "
            f"{fleet.path} and reloaded",
            result.as_dict(),
        )
    result.slowest_propagation_ms = round(result.seconds * 1000, 1)
    result.message = f"{current} -> {target}: {len(fleet.endpoints)} instance(s) reloaded {fleet.path}"
    return result


def probe_ids(driver: Any, database: str, model: Any, dimension: int, count: int = 3) -> list[str]:
    """Ids of items with a usable embedding (right size, finite), to ask the engines about."""
    from .settings import quote_identifier

    label, key = quote_identifier(model.label), quote_identifier(model.id_property)
    embedding = quote_identifier(model.embedding_property)
    records, _, _ = driver.execute_query(
        f"MATCH (m:{label}) WHERE valueType(m.{key}) = 'STRING NOT NULL' AND size(m.{embedding}) = $dimension "
        f"AND valueType(m.{embedding}) STARTS WITH 'LIST<FLOAT' "
        f"AND all(x IN m.{embedding} WHERE x = x AND abs(x) < 1e300) "
        f"RETURN m.{key} AS id LIMIT $count",
        {"dimension": dimension, "count": count},
        database_=database,
    )
    return [record["id"] for record in records]


def check_reads(endpoints: list[str], probe_ids: list[str], mode: str, timeout: float = 5.0) -> dict[str, Any]:
    """Ask every instance for neighbours of each probe id; each answer must come from the mode's read source."""
    expected = READ_SOURCE[check_mode_name(mode)]
    checks: list[dict[str, Any]] = []
    for endpoint in endpoints:
        for item_id in probe_ids:
            try:
                status, body = get_json(similar_url(endpoint, item_id), timeout)
            except TransientError as error:
                status, body = 0, {"error": str(error)}
            served_by = body.get("served_by") if isinstance(body, dict) else None
            checks.append(
                {
                    "endpoint": endpoint,
                    "id": item_id,
                    "status": status,
                    "served_by": served_by,
                    "ok": status == 200 and served_by == expected,
                    "error": None if status == 200 else body.get("error"),
                }
            )
    failed = [check for check in checks if not check["ok"]]
    return {
        "expected_source": expected,
        "checked": len(checks),
        "failed": len(failed),
        "passed": bool(checks) and not failed,
        "failures": failed[:10],
    }
