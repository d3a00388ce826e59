"""Start, stop and inspect the sandbox's server processes by pid.

Every process is started in a session of its own and recorded in a pid file
holding its pid and start time, so that ``down`` stops exactly what ``up``
started (a reused pid is never mistaken for ours) together with every child it
spawned, and ``up`` on a healthy stack changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .errors import TerminalError
from .readiness import NotReady, Probe


@dataclass(frozen=True)
class ProcessSpec:
    """What to run for one sandbox server and how to stop it."""

    name: str
    argv: list[str]
    pidfile: Path
    logfile: Path
    cwd: Path | None = None
    environment: dict[str, str] = field(default_factory=dict, repr=False)
    run_as: str | None = None
    ports: list[int] = field(default_factory=list)
    stop_signal: int = signal.SIGTERM
    stop_grace_seconds: float = 10.0
    # What else the server's behaviour depends on (the digest of its code, say); part of the fingerprint.
    revision: str = ""
    # Seconds to wait, before a start, until every port can be bound (0: do not wait).
    free_ports_timeout: float = 0.0

    def fingerprint(self) -> str:
        """Digest of the command and the revision: a running server with another one is out of date."""
        return hashlib.sha256(json.dumps([self.argv, self.revision]).encode()).hexdigest()[:16]


@dataclass
class ProcessState:
    """What the pid file says and whether that process is still the one we started."""

    pid: int | None
    running: bool
    fingerprint: str | None = None


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/PID/stat field 22).

    Unlike psutil's create_time, which adds the boot time derived from the wall clock, it does not
    move when the clock is stepped (seen here: an 11 s step made every sandbox server look stopped).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 else None


def read_state(spec: ProcessSpec) -> ProcessState:
    """Return the recorded process if it is still alive and still ours."""
    try:
        record = json.loads(spec.pidfile.read_text())
        pid, started = int(record["pid"]), float(record["create_time"])
    except (OSError, ValueError, KeyError, TypeError):
        return ProcessState(pid=None, running=False)
    try:
        process = psutil.Process(pid)
        recorded_ticks = record.get("start_ticks")
        if recorded_ticks is not None:
            same = start_ticks(pid) == recorded_ticks
        else:  # a pid file from before start_ticks was recorded
            same = abs(process.create_time() - started) < 1.0
        ours = same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        ours = False
    return ProcessState(pid=pid, running=ours, fingerprint=record.get("fingerprint"))


def log_tail(logfile: Path, lines: int = 30) -> str:
    """The last lines of a log, for failure messages."""
    try:
        with logfile.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def port_owner(port: int) -> str | None:
    """Describe who listens on 127.0.0.1:port, or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return None
    listeners = [
        connection.pid
        for connection in psutil.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port
    ]
    pid = next((pid for pid in listeners if pid), None)
    if pid is None:
        return "an unknown process"
    try:
        return f"pid {pid} ({' '.join(psutil.Process(pid).cmdline())[:120]})"
    except psutil.Error:
        return f"pid {pid}"


def wait_for_free_ports(ports: list[int], timeout: float) -> None:
    """Wait until every port can be bound on 127.0.0.1 without SO_REUSEADDR.

    A server killed while clients were connected leaves its ports in TIME_WAIT for a minute;
    milvus-server then silently takes the next free ports, where no client looks for it.

    Raises:
        TerminalError: a port still cannot be bound after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = []
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as trial:
                try:
                    trial.bind(("127.0.0.1", port))
                except OSError:
                    held.append(port)
        if not held:
            return
        if time.monotonic() >= deadline:
            raise TerminalError(
                f"port(s) {', '.join(map(str, held))} still cannot be bound after {timeout:.0f}s "
                "(connections of a killed server linger in TIME_WAIT for a minute; `ss -tan` shows them)"
            )
        time.sleep(1.0)


def wait_ready(spec: ProcessSpec, pid: int, probe: Probe, timeout: float) -> str:
    """Poll ``probe`` until it answers, the process dies or ``timeout`` passes.

    Raises:
        TerminalError: the process exited or never became ready; the message
            carries the last probe answer and the log tail.
    """
    deadline = time.monotonic() + timeout
    last_reason = "not probed yet"
    while True:
        try:
            process = psutil.Process(pid)
            alive = process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            alive = False
        if not alive:
            raise TerminalError(
                f"{spec.name} exited during start-up; last log lines of {spec.logfile}:\n{log_tail(spec.logfile)}"
            )
        try:
            return probe()
        except NotReady as error:
            last_reason = str(error)
        if time.monotonic() >= deadline:
            raise TerminalError(
                f"{spec.name} was not ready after {timeout:.0f}s ({last_reason}); "
                f"last log lines of {spec.logfile}:\n{log_tail(spec.logfile)}"
            )
        time.sleep(1.0)


def _launch(spec: ProcessSpec) -> int:
    spec.logfile.parent.mkdir(parents=True, exist_ok=True)
    spec.pidfile.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, **spec.environment}
    user: dict[str, Any] = {}
    if spec.run_as:
        account = pwd.getpwnam(spec.run_as)
        user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        environment["HOME"] = account.pw_dir
    with spec.logfile.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} sandbox starts {spec.name}\n".encode())
        log.flush()
        process = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(spec.cwd) if spec.cwd else None,
            env=environment,
            start_new_session=True,
            close_fds=True,
            **user,
        )
    created = psutil.Process(process.pid).create_time()
    record = {
        "pid": process.pid,
        "create_time": created,
        "start_ticks": start_ticks(process.pid),
        "argv": spec.argv[:1],
        "fingerprint": spec.fingerprint(),
    }
    temporary = spec.pidfile.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(spec.pidfile)
    return process.pid


def ensure_started(
    spec: ProcessSpec, probe: Probe, timeout: float, check_mode: bool, restart: bool = False
) -> dict[str, Any]:
    """Bring one server up unless it already runs and answers its probe.

    A running server whose pid file records another fingerprint (its command or revision changed)
    is restarted too, so ``up`` after a change runs what was asked for.

    Args:
        restart: stop a running server first (its configuration changed).

    Returns:
        ``changed``, ``pid``, ``health`` (what answered) and ``action``.

    Raises:
        TerminalError: a port is taken by a process that is not ours, the server
            exited, or it never became ready (it is then stopped again).
    """
    state = read_state(spec)
    restart = restart or (state.running and state.fingerprint != spec.fingerprint())
    if restart and state.running and state.pid is not None:
        if check_mode:
            return {"changed": True, "pid": state.pid, "health": None, "action": "restart", "was_running": True}
        _terminate(spec, state.pid)
        spec.pidfile.unlink(missing_ok=True)
        started = ensure_started(spec, probe, timeout, check_mode)
        return {**started, "action": "restart", "was_running": True}
    if state.running and state.pid is not None:
        try:
            health = probe()
        except NotReady:
            health = wait_ready(spec, state.pid, probe, timeout)
        return {"changed": False, "pid": state.pid, "health": health, "action": "none", "was_running": True}
    for port in spec.ports:
        owner = port_owner(port)
        if owner:
            raise TerminalError(
                f"cannot start {spec.name}: port {port} is already in use by {owner}, "
                "which the sandbox did not start; stop it or change the port in the inventory"
            )
    if check_mode:
        return {"changed": True, "pid": None, "health": None, "action": "start", "was_running": False}
    if spec.free_ports_timeout > 0:
        wait_for_free_ports(spec.ports, spec.free_ports_timeout)
    pid = _launch(spec)
    try:
        health = wait_ready(spec, pid, probe, timeout)
    except BaseException:
        _terminate(spec, pid)
        spec.pidfile.unlink(missing_ok=True)
        raise
    return {"changed": True, "pid": pid, "health": health, "action": "start", "was_running": False}


def _group_members(pid: int) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return []


def _terminate(spec: ProcessSpec, pid: int) -> None:
    members = _group_members(pid)
    with contextlib.suppress(OSError):
        os.killpg(pid, spec.stop_signal)
    _, alive = psutil.wait_procs(members, timeout=spec.stop_grace_seconds)
    if alive:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        _, alive = psutil.wait_procs(alive, timeout=10)
    if alive:
        raise TerminalError(f"{spec.name}: processes {[p.pid for p in alive]} survived SIGKILL")


def ensure_stopped(spec: ProcessSpec, check_mode: bool) -> dict[str, Any]:
    """Stop the recorded process and all its children; a stale pid file is just removed."""
    state = read_state(spec)
    if not state.running or state.pid is None:
        if spec.pidfile.exists() and not check_mode:
            spec.pidfile.unlink()
        return {"changed": False, "pid": None, "action": "none", "was_running": False}
    if check_mode:
        return {"changed": True, "pid": state.pid, "action": "stop", "was_running": True}
    _terminate(spec, state.pid)
    spec.pidfile.unlink(missing_ok=True)
    return {"changed": True, "pid": state.pid, "action": "stop", "was_running": True}


def status(spec: ProcessSpec, probe: Probe) -> dict[str, Any]:
    """Report whether the server runs and answers, changing nothing."""
    state = read_state(spec)
    health: str | None = None
    healthy = False
    if state.running:
        try:
            health = probe()
            healthy = True
        except NotReady as error:
            health = str(error)
    return {
        "changed": False,
        "pid": state.pid if state.running else None,
        "running": state.running,
        "healthy": healthy,
        "health": health,
        "action": "none",
        "was_running": state.running,
    }
