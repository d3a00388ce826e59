"""The process supervisor, driven with small local processes instead of servers."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from ansible.module_utils.hybrid_migration import sandbox
from ansible.module_utils.hybrid_migration.errors import TerminalError
from ansible.module_utils.hybrid_migration.readiness import NotReady, command_probe, http_probe


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_server_spec(tmp_path: Path, port: int, **overrides) -> sandbox.ProcessSpec:
    values = {
        "name": "web",
        "argv": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        "pidfile": tmp_path / "web.pid",
        "logfile": tmp_path / "web.log",
        "cwd": tmp_path,
        "ports": [port],
        "stop_grace_seconds": 5,
    }
    values.update(overrides)
    return sandbox.ProcessSpec(**values)


def test_start_is_idempotent_and_stop_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()
    spec = http_server_spec(tmp_path, port)
    probe = http_probe(f"http://127.0.0.1:{port}/")
    first = sandbox.ensure_started(spec, probe, timeout=30, check_mode=False)
    assert first["changed"] and first["action"] == "start" and "HTTP 200" in first["health"]
    second = sandbox.ensure_started(spec, probe, timeout=30, check_mode=False)
    assert not second["changed"] and second["pid"] == first["pid"]
    assert sandbox.status(spec, probe)["healthy"]
    stopped = sandbox.ensure_stopped(spec, check_mode=False)
    assert stopped["changed"] and not psutil.pid_exists(first["pid"])
    assert not spec.pidfile.exists()
    assert sandbox.port_owner(port) is None
    assert not sandbox.ensure_stopped(spec, check_mode=False)["changed"]


def test_check_mode_predicts_without_acting(tmp_path: Path) -> None:
    port = free_port()
    spec = http_server_spec(tmp_path, port)
    probe = http_probe(f"http://127.0.0.1:{port}/")
    predicted = sandbox.ensure_started(spec, probe, timeout=30, check_mode=True)
    assert predicted["changed"] and predicted["pid"] is None
    assert not spec.pidfile.exists() and sandbox.port_owner(port) is None
    started = sandbox.ensure_started(spec, probe, timeout=30, check_mode=False)
    assert sandbox.ensure_stopped(spec, check_mode=True)["changed"]
    assert psutil.pid_exists(started["pid"])
    sandbox.ensure_stopped(spec, check_mode=False)


def test_a_port_held_by_someone_else_is_refused(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        spec = http_server_spec(tmp_path, port)
        with pytest.raises(TerminalError, match=f"port {port} is already in use by pid"):
            sandbox.ensure_started(spec, http_probe(f"http://127.0.0.1:{port}/"), timeout=5, check_mode=False)


def test_a_stale_pidfile_is_not_mistaken_for_a_running_server(tmp_path: Path) -> None:
    spec = http_server_spec(tmp_path, free_port())
    me = psutil.Process()
    spec.pidfile.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time() - 1000}))
    assert not sandbox.read_state(spec).running
    assert not sandbox.ensure_stopped(spec, check_mode=False)["changed"]
    assert psutil.pid_exists(me.pid) and not spec.pidfile.exists()


def test_children_are_stopped_and_sigterm_ignorers_are_killed(tmp_path: Path) -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "open(sys.argv[1], 'w').write('ready')\n"
        "time.sleep(600)\n"
    )
    marker = tmp_path / "ready"
    spec = sandbox.ProcessSpec(
        name="stubborn",
        argv=[sys.executable, "-c", script, str(marker)],
        pidfile=tmp_path / "stubborn.pid",
        logfile=tmp_path / "stubborn.log",
        stop_signal=signal.SIGTERM,
        stop_grace_seconds=1,
    )
    started = sandbox.ensure_started(spec, command_probe(["test", "-f", str(marker)]), timeout=30, check_mode=False)
    children = psutil.Process(started["pid"]).children(recursive=True)
    assert children
    began = time.monotonic()
    sandbox.ensure_stopped(spec, check_mode=False)
    assert time.monotonic() - began < 10
    assert not any(process.is_running() and process.status() != psutil.STATUS_ZOMBIE for process in children)


def test_a_server_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    spec = sandbox.ProcessSpec(
        name="crasher",
        argv=[sys.executable, "-c", "import sys; print('bad config line 3'); sys.exit(3)"],
        pidfile=tmp_path / "crasher.pid",
        logfile=tmp_path / "crasher.log",
    )

    def never() -> str:
        raise NotReady("not yet")

    with pytest.raises(TerminalError, match=r"(?s)crasher exited during start-up.*bad config line 3"):
        sandbox.ensure_started(spec, never, timeout=30, check_mode=False)
    assert not spec.pidfile.exists()


def test_a_server_that_never_gets_ready_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    spec = sandbox.ProcessSpec(
        name="sleeper",
        argv=[sys.executable, "-c", "import time; time.sleep(600)"],
        pidfile=tmp_path / "sleeper.pid",
        logfile=tmp_path / "sleeper.log",
        stop_grace_seconds=1,
    )

    def never() -> str:
        raise NotReady("port closed")

    with pytest.raises(TerminalError, match=r"sleeper was not ready after 2s \(port closed\)"):
        sandbox.ensure_started(spec, never, timeout=2, check_mode=False)
    assert not spec.pidfile.exists()
    assert not any("time.sleep(600)" in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))


def test_restart_replaces_the_process(tmp_path: Path) -> None:
    port = free_port()
    spec = http_server_spec(tmp_path, port)
    probe = http_probe(f"http://127.0.0.1:{port}/")
    first = sandbox.ensure_started(spec, probe, timeout=30, check_mode=False)
    again = sandbox.ensure_started(spec, probe, timeout=30, check_mode=False, restart=True)
    assert again["changed"] and again["action"] == "restart" and again["pid"] != first["pid"]
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    sandbox.ensure_stopped(spec, check_mode=False)


def test_a_new_revision_or_command_restarts_the_process(tmp_path: Path) -> None:
    port = free_port()
    spec = http_server_spec(tmp_path, port, revision="code-1")
    probe = http_probe(f"http://127.0.0.1:{port}/")
    first = sandbox.ensure_started(spec, probe, timeout=30, check_mode=False)
    same = sandbox.ensure_started(spec, probe, timeout=30, check_mode=False)
    assert not same["changed"] and same["pid"] == first["pid"]
    newer = http_server_spec(tmp_path, port, revision="code-2")
    predicted = sandbox.ensure_started(newer, probe, timeout=30, check_mode=True)
    assert predicted["changed"] and predicted["action"] == "restart" and sandbox.read_state(spec).pid == first["pid"]
    restarted = sandbox.ensure_started(newer, probe, timeout=30, check_mode=False)
    assert restarted["action"] == "restart" and restarted["pid"] != first["pid"]
    other_command = http_server_spec(tmp_path, port, revision="code-2", argv=[*newer.argv, "--protocol", "HTTP/1.0"])
    again = sandbox.ensure_started(other_command, probe, timeout=30, check_mode=False)
    assert again["action"] == "restart" and again["pid"] != restarted["pid"]
    sandbox.ensure_stopped(other_command, check_mode=False)


def test_wait_for_free_ports_waits_until_a_held_port_is_released() -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))  # bound, not listening: no owner to report, but not bindable either
    port = holder.getsockname()[1]
    threading.Timer(1.5, holder.close).start()
    started = time.monotonic()
    sandbox.wait_for_free_ports([port], timeout=30)
    assert time.monotonic() - started >= 1.0


def test_wait_for_free_ports_names_the_ports_still_held() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        with pytest.raises(TerminalError, match=rf"port\(s\) {port} still cannot be bound after 1s"):
            sandbox.wait_for_free_ports([port, free_port()], timeout=1)


def test_log_tail_of_a_missing_log() -> None:
    assert sandbox.log_tail(Path("/nonexistent/log")) == "(no log)"


def test_a_stepped_wall_clock_does_not_make_a_running_server_look_stopped(tmp_path: Path) -> None:
    import os

    spec = http_server_spec(tmp_path, free_port())
    spec.pidfile.parent.mkdir(parents=True, exist_ok=True)
    me = psutil.Process(os.getpid())
    record = {"pid": me.pid, "create_time": me.create_time() + 11.0, "start_ticks": sandbox.start_ticks(me.pid)}
    spec.pidfile.write_text(json.dumps(record))
    assert sandbox.read_state(spec).running
    spec.pidfile.write_text(json.dumps({**record, "start_ticks": record["start_ticks"] + 1}))
    assert not sandbox.read_state(spec).running  # another process that got the same pid
