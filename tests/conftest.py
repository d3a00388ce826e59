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
