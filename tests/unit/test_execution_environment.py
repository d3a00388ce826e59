"""execution-environment.yml builds an image that runs the runbook.

No ansible-builder or container engine here, so the definition is checked instead: ansible-builder 3's
schema, every file it names, the pins against requirements.txt, and every import of the code that runs
inside a job against what the image installs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.resources
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

DEFINITION = ROOT / "execution-environment.yml"

# requirements.txt entries the image does not take from requirements-runtime.txt, and why.
NOT_AT_RUN_TIME = {
    "ansible": "the collections come from requirements.yml (dependencies.galaxy)",
    "ansible-core": "installed by dependencies.ansible_core, with the same pin",
    "ansible-lint": "lint",
    "molecule": "tests",
    "milvus": "the sandbox's Milvus server",
    "pytest": "tests",
    "pytest-timeout": "tests",
    "ruff": "lint",
    "yamllint": "lint",
}

# The keys ansible-builder 3 accepts (its ee_schema.py, version 3), where it refuses any other.
BUILDER_V3_KEYS = {
    "": {
        "version",
        "build_arg_defaults",
        "dependencies",
        "images",
        "additional_build_steps",
        "additional_build_files",
        "options",
    },
    "dependencies": {
        "python",
        "galaxy",
        "system",
        "python_interpreter",
        "ansible_core",
        "ansible_runner",
        "exclude",
    },
    "dependencies.python_interpreter": {"package_system", "python_path"},
    "dependencies.ansible_core": {"package_pip"},
    "dependencies.ansible_runner": {"package_pip"},
    "images": {"base_image"},
    "additional_build_steps": {
        f"{where}_{stage}" for where in ("prepend", "append") for stage in ("base", "galaxy", "builder", "final")
    },
}

# Where the code that runs inside a job lives: the modules, the engine they import, the plugins.
RUN_TIME_SOURCES = ["library", "module_utils/hybrid_migration", "action_plugins", "filter_plugins"]


def definition() -> dict[str, Any]:
    return yaml.safe_load(DEFINITION.read_text())


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def section(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    for part in filter(None, dotted.split(".")):
        data = data.get(part, {})
    return data


def test_the_definition_is_ansible_builder_version_3() -> None:
    data = definition()
    assert data["version"] == 3
    for where, allowed in BUILDER_V3_KEYS.items():
        unknown = set(section(data, where)) - allowed
        assert not unknown, f"ansible-builder 3 refuses {sorted(unknown)} in {where or 'the top level'}"
    schema = json.loads((importlib.resources.files("ansiblelint.schemas") / "execution-environment.json").read_text())
    jsonschema.validate(data, {**schema["$defs"]["v3"], "$defs": schema["$defs"]})
    image = data["images"]["base_image"]["name"]
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9./_-]+:[A-Za-z0-9._-]+", image), f"{image}: name the registry and a tag"


def test_every_file_the_definition_names_exists() -> None:
    dependencies = definition()["dependencies"]
    for key in ("galaxy", "python", "system"):
        assert isinstance(dependencies[key], str), f"dependencies.{key} should name the project's file"
        assert (DEFINITION.parent / dependencies[key]).is_file(), dependencies[key]
    assert dependencies["galaxy"] == "requirements.yml"
    for entry in definition().get("additional_build_files", []):
        assert list(DEFINITION.parent.glob(entry["src"])), entry["src"]


def test_ansible_core_and_the_runtime_packages_are_pinned_as_in_requirements_txt() -> None:
    """requirements-runtime.txt is requirements.txt without the build and test tools, line for line."""
    development = requirement_lines(ROOT / "requirements.txt")
    runtime = requirement_lines(ROOT / "requirements-runtime.txt")
    by_name = {canonicalize_name(Requirement(line).name): line for line in development}
    assert set(NOT_AT_RUN_TIME) <= set(by_name), "NOT_AT_RUN_TIME names a package requirements.txt no longer has"
    expected = sorted(line for name, line in by_name.items() if name not in NOT_AT_RUN_TIME)
    assert sorted(runtime) == expected
    for line in runtime:
        assert str(Requirement(line).specifier).startswith("=="), f"{line} is not pinned"
    dependencies = definition()["dependencies"]
    assert dependencies["ansible_core"]["package_pip"] == by_name["ansible-core"]
    assert re.fullmatch(r"ansible-runner==[0-9.]+", dependencies["ansible_runner"]["package_pip"])


def test_the_interpreter_is_one_the_pinned_ansible_core_supports() -> None:
    interpreter = definition()["dependencies"]["python_interpreter"]
    version = re.fullmatch(r"/usr/bin/python(3\.\d+)", interpreter["python_path"]).group(1)
    assert interpreter["package_system"] == f"python{version}"
    supported = SpecifierSet(importlib.metadata.metadata("ansible-core")["Requires-Python"])
    assert version in supported, f"ansible-core needs Python {supported}, the image has {version}"


def test_bindep_lines_are_well_formed() -> None:
    for line in requirement_lines(ROOT / definition()["dependencies"]["system"]):
        assert re.fullmatch(r"[A-Za-z0-9._+-]+( \[[a-z0-9:_ !-]+\])?", line), line


def third_party_imports() -> dict[str, set[str]]:
    """Top-level names imported by the run-time code, outside the standard library and Ansible."""
    imports: dict[str, set[str]] = {}
    for directory in RUN_TIME_SOURCES:
        for path in sorted((ROOT / directory).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in {"ansible", "__future__"}:
                        imports.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return imports


def installed_closure(lines: list[str]) -> set[str]:
    """Distributions pip installs for these requirements: each one and, with its extras, what it requires."""
    installed: set[str] = set()
    pending = [Requirement(line) for line in lines]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in installed:
            continue
        installed.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(dependency)
    return installed


def test_every_package_the_run_time_code_imports_is_in_the_image() -> None:
    dependencies = definition()["dependencies"]
    image = installed_closure(
        [*requirement_lines(ROOT / dependencies["python"]), dependencies["ansible_core"]["package_pip"]]
    )
    providers = importlib.metadata.packages_distributions()
    imports = third_party_imports()
    assert {"neo4j", "pymilvus", "psycopg", "redis"} <= set(imports), "the scan found too little"
    missing = {
        name: sorted(where)
        for name, where in imports.items()
        if not {canonicalize_name(dist) for dist in providers.get(name, [])} & image
    }
    assert missing == {}, f"imported but not installed in the image: {missing}"


def test_requirements_yml_carries_every_collection_the_roles_use() -> None:
    wanted = {entry["name"] for entry in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    used: set[str] = set()
    for path in [*(ROOT / "roles").glob("*/tasks/*.yml"), *(ROOT / "playbooks").glob("*.yml")]:
        used |= set(re.findall(r"^\s*-?\s*(?:group/)?([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:", path.read_text(), re.M))
    assert used - {"ansible.builtin"} - wanted == set()
