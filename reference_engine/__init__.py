"""A small recommendation engine that honours the storage-mode contract of MISSION.md.

It exists so the zero-downtime claim is tested against something that really serves:
several instances share Neo4j, Milvus and the control record, and the runbook flips them
while a load runs. It reads the control-record contract from the runbook's own package
(``module_utils/hybrid_migration/engine_control.py``), so the two cannot drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

_MODULE_UTILS = str(Path(__file__).resolve().parents[1] / "module_utils")
if _MODULE_UTILS not in sys.path:
    sys.path.insert(0, _MODULE_UTILS)
