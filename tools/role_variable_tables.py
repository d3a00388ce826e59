"""Rewrite the variable table of every role README from its defaults/main.yml.

Run after changing a role's defaults: ``.venv/bin/python tools/role_variable_tables.py``.
The description of each variable is the comment line above it; a unit test
(tests/unit/test_documentation.py) fails while a table is out of step.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HEADER = "| name | default | description |"


def table(defaults: Path) -> str:
    lines = defaults.read_text().splitlines()
    values = yaml.safe_load(defaults.read_text()) or {}
    rows = []
    for index, line in enumerate(lines):
        match = re.match(r"^([a-z_][a-z0-9_]*):", line)
        if match:
            name = match.group(1)
            comment = lines[index - 1].lstrip("# ").strip()
            value = values[name]
            shown = (value if isinstance(value, str) else json.dumps(value)).replace("|", "\\|")
            rows.append(f"| `{name}` | `{shown}` | {comment} |")
    return HEADER + "\n|---|---|---|\n" + "\n".join(rows) + "\n"


def main() -> None:
    for role in sorted((ROOT / "roles").iterdir()):
        defaults = role / "defaults" / "main.yml"
        readme = role / "README.md"
        if not defaults.exists() or not readme.exists():
            continue
        text = readme.read_text()
        readme.write_text(text[: text.index(HEADER)] + table(defaults))


if __name__ == "__main__":
    main()
