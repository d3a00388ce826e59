"""Make imports resolve as they do under ansible-playbook.

Modules import ``ansible.module_utils.hybrid_migration``; Ansible finds it through
the ``module_utils`` setting of ansible.cfg. Tests extend the package path the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ansible.module_utils

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))
for extra in ("filter_plugins", "library"):
    if str(ROOT / extra) not in sys.path:
        sys.path.insert(0, str(ROOT / extra))


def collection_module_options(name: str) -> set[str]:
    """Option names and aliases of an installed collection module, doc fragments included."""
    from ansible.plugins.loader import fragment_loader, module_loader
    from ansible.utils.plugin_docs import get_docstring

    context = module_loader.find_plugin_with_context(name)
    assert context.resolved, f"module {name} is not installed"
    collection = ".".join(name.split(".")[:2])
    documentation, *_ = get_docstring(context.plugin_resolved_path, fragment_loader, collection_name=collection)
    options = documentation["options"]
    return set(options) | {alias for option in options.values() for alias in option.get("aliases", [])}


def tasks_using(tasks: list, prefix: str) -> list[tuple[str, str, dict]]:
    """(task name, module, arguments) of every task, blocks included, whose module starts with ``prefix``."""
    found = []
    for task in tasks:
        for key in ("block", "rescue", "always"):
            found.extend(tasks_using(task.get(key) or [], prefix))
        for key, arguments in task.items():
            if key.startswith(prefix):
                found.append((task.get("name", ""), key, arguments))
    return found
