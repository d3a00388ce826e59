"""Documentation kept in step with the code: module docs, role defaults and their READMEs."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from typing import Any

import pytest
import yaml
from conftest import ROOT

MODULES = sorted(path.stem for path in (ROOT / "library").glob("*.py"))
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "defaults" / "main.yml").exists())


def load_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"library_{name}", ROOT / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fragment_options(reference: str) -> dict[str, Any]:
    source = (ROOT / "doc_fragments" / "hybrid_migration.py").read_text()
    tree = ast.parse(source)
    _, attribute = reference.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.targets[0].id == attribute:
            return yaml.safe_load(node.value.value)["options"]
    raise AssertionError(f"fragment {reference} not found")


def documented_options(module: Any) -> dict[str, Any]:
    """Options as ansible-doc shows them: the module's own keys override a fragment's."""
    documentation = yaml.safe_load(module.DOCUMENTATION)
    options = dict(documentation.get("options", {}))
    for reference in documentation.get("extends_documentation_fragment", []):
        for name, fragment in fragment_options(reference).items():
            options[name] = {**fragment, **options.get(name, {})}
    return options


def compare(spec: dict[str, Any], docs: dict[str, Any], where: str) -> None:
    assert set(spec) == set(docs), f"{where}: documented {sorted(docs)} but accepts {sorted(spec)}"
    for name, option in spec.items():
        doc = docs[name]
        assert doc.get("type", "str") == option.get("type", "str"), f"{where}.{name} type"
        if "default" in option and option["default"] not in (None, {}):
            assert doc.get("default") == option["default"], f"{where}.{name} default"
        assert bool(doc.get("required", False)) == bool(option.get("required", False)), f"{where}.{name} required"
        if "choices" in option:
            assert doc.get("choices") == option["choices"], f"{where}.{name} choices"
        if option.get("no_log"):
            assert "never logged" in str(doc["description"]), f"{where}.{name} must say it is never logged"
        if "options" in option:
            compare(option["options"], doc.get("suboptions", {}), f"{where}.{name}")


@pytest.mark.parametrize("name", MODULES)
def test_module_documentation_matches_its_argument_spec(name: str) -> None:
    module = load_module(name)
    compare(module.argument_spec(), documented_options(module), name)


@pytest.mark.parametrize("name", MODULES)
def test_module_documents_check_mode_examples_and_returns(name: str) -> None:
    module = load_module(name)
    documentation = yaml.safe_load(module.DOCUMENTATION)
    assert documentation["module"] == name
    assert documentation["attributes"]["check_mode"]["support"] in {"full", "partial"}
    examples = yaml.safe_load(module.EXAMPLES)
    assert examples and all(name in task for task in examples)
    assert yaml.safe_load(module.RETURN)


def defaults_with_comments(role: str) -> tuple[dict[str, Any], list[str]]:
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    values = yaml.safe_load(path.read_text()) or {}
    lines = path.read_text().splitlines()
    uncommented = [
        match.group(1)
        for index, line in enumerate(lines)
        if (match := re.match(r"^([a-z_][a-z0-9_]*):", line)) and not lines[index - 1].startswith("#")
    ]
    return values, uncommented


def readme_rows(role: str) -> dict[str, tuple[str, str]]:
    text = (ROOT / "roles" / role / "README.md").read_text()
    rows = {}
    for match in re.finditer(r"^\| `([a-z_0-9]+)` \| `(.*?)` \| (.+?) \|$", text, re.MULTILINE):
        rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def render_default(value: Any) -> str:
    """The default as the README table shows it (pipes escaped for Markdown)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_are_prefixed_and_commented(role: str) -> None:
    values, uncommented = defaults_with_comments(role)
    assert values, f"{role} has no defaults"
    assert [name for name in values if not name.startswith(f"{role}_")] == []
    assert uncommented == [], f"{role}: no comment line above {uncommented}"


@pytest.mark.parametrize("role", ROLES)
def test_role_readme_table_matches_defaults(role: str) -> None:
    values, _ = defaults_with_comments(role)
    rows = readme_rows(role)
    assert set(rows) == set(values), f"{role}/README.md table differs from defaults/main.yml"
    for name, value in values.items():
        assert rows[name][0] == render_default(value), f"{role}/README.md default of {name}"


def test_every_library_module_is_a_thin_wrapper() -> None:
    for name in MODULES:
        source = (ROOT / "library" / f"{name}.py").read_text()
        assert "ansible.module_utils.hybrid_migration" in source, name
        assert "import neo4j" not in source and "import pymilvus" not in source, f"{name} opens connections itself"
