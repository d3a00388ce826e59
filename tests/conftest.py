"""Make imports resolve as they do under ansible-playbook.

Modules import ``ansible.module_utils.hybrid_migration``; Ansible finds it through
the ``module_utils`` setting of ansible.cfg. Tests extend the package path the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible.module_utils

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))
for extra in ("filter_plugins", "library"):
    if str(ROOT / extra) not in sys.path:
        sys.path.insert(0, str(ROOT / extra))


def ansible_playbook(
    playbook: str, *arguments: str, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a playbook of this project as an operator would, with its ansible.cfg; output captured."""
    env = {**(os.environ if environment is None else environment)}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def collection_module_documentation(*names: str) -> dict[str, dict[str, Any]]:
    """Installed collection modules' documentation by name, doc fragments merged in, from ansible-doc."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-doc"), "--json", *names],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = {name: entry["doc"] for name, entry in json.loads(done.stdout).items()}
    assert set(found) == set(names), f"not installed: {sorted(set(names) - set(found))}"
    return found


def documented_options(documentation: dict[str, Any]) -> set[str]:
    """The option names a module accepts: each documented option and its aliases."""
    options = documentation["options"]
    return set(options) | {alias for option in options.values() for alias in option.get("aliases", [])}


def walk_tasks(
    tasks: list[dict[str, Any]], guards: tuple[str, ...] = ()
) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    """Every task of a task file, blocks included, with the `when` of the blocks around it.

    A block that sets module_defaults is yielded too, after its tasks.
    """
    for task in tasks:
        if "block" in task:
            inner = (*guards, str(task.get("when", "")))
            for key in ("block", "rescue", "always"):
                yield from walk_tasks(task.get(key, []), inner)
            if "module_defaults" in task:
                yield task, guards
        else:
            yield task, guards
