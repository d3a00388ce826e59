"""Action plugin: print a running copy's progress every interval until it ends (module docs in library/)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ansible.module_utils
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

# On the controller, Ansible puts the module_utils setting only into what it ships to modules;
# the plugin finds the shared engine code the same way the tests do.
_MODULE_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
if _MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_MODULE_UTILS)

from ansible.module_utils.hybrid_migration.monitor import monitor_argument_spec, render, snapshot

display = Display()


class ActionModule(ActionBase):
    """Runs on the controller: a module could only report once, at its end."""

    _VALID_ARGS = frozenset(
        (
            "job",
            "interval_secs",
            "checkpoint_file",
            "pushgateway_url",
            "run_state_file",
            "async_job_id",
            "wait_for_start_seconds",
            "max_seconds",
        )
    )
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=monitor_argument_spec())
        if args["interval_secs"] <= 0:
            return {**result, "failed": True, "msg": "interval_secs must be above 0"}
        async_file = None
        if args["async_job_id"]:
            async_file = Path("~/.ansible_async").expanduser() / args["async_job_id"]

        def take() -> Any:
            return snapshot(
                args["job"],
                Path(args["checkpoint_file"]) if args["checkpoint_file"] else None,
                args["pushgateway_url"],
                Path(args["run_state_file"]) if args["run_state_file"] else None,
                async_file,
            )

        started = time.monotonic()
        lines: list[str] = []
        seen_running = False
        while True:
            progress = take()
            line = render(progress)
            display.display(line)
            lines.append(line)
            seen_running = seen_running or bool(progress.running)
            waited = time.monotonic() - started
            if self._task.check_mode:
                break  # a dry run shows where things stand, once
            if progress.finished and (seen_running or progress.checkpoint_complete or async_file):
                break
            if not seen_running and not progress.checkpoint_complete and waited > args["wait_for_start_seconds"]:
                result.update(msg=f"no {args['job']} copy started within {args['wait_for_start_seconds']:.0f} s")
                break
            if waited > args["max_seconds"]:
                result.update(msg=f"stopped following after max_seconds={args['max_seconds']:.0f}")
                break
            time.sleep(args["interval_secs"])
        result.update(
            changed=False,
            finished=progress.finished,
            percent=progress.percent,
            migrated=progress.migrated,
            total=progress.total,
            items_per_second=progress.items_per_second,
            eta_seconds=progress.eta_seconds,
            phase=progress.phase,
            sources=list(progress.sources),
            async_failed=progress.async_failed,
            lines=lines[-20:],
            seconds=round(time.monotonic() - started, 1),
        )
        result.setdefault("msg", lines[-1])
        return result
