"""Docs that describe data and settings must list exactly what the code has."""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible.module_utils.hybrid_migration import seed
from ansible.module_utils.hybrid_migration.settings import SourceModel
from conftest import ROOT

SANDBOX_ONLY = {"sandbox_dir"}  # the production inventory has no sandbox


def inventory_variables(name: str) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "inventories" / name / "group_vars" / "all").glob("*.yml"):
        names |= set(yaml.safe_load(path.read_text()) or {})
    return names


def test_every_bad_record_is_documented_with_its_reason() -> None:
    text = (ROOT / "docs" / "sandbox.md").read_text()
    for record in seed.bad_record_catalogue(seed.SeedPlan(bad_records=True), SourceModel(), "agentdb:"):
        row = f"| {record.store} | `{record.key.replace('|', chr(92) + '|')}` | `{record.kind}` | "
        assert row in text, f"docs/sandbox.md lacks {row}"
        assert record.expected_reason.replace("|", "\\|") in text


def test_every_inventory_variable_is_documented() -> None:
    text = (ROOT / "docs" / "variables.md").read_text()
    missing = sorted(name for name in inventory_variables("local") if f"| `{name}` |" not in text)
    assert missing == []


def test_the_production_example_defines_what_the_sandbox_inventory_defines() -> None:
    assert inventory_variables("local") - SANDBOX_ONLY - inventory_variables("example-production") == set()


def test_production_secrets_come_from_the_vault() -> None:
    for path in (ROOT / "inventories" / "example-production" / "group_vars" / "all").glob("*.yml"):
        for name, value in (yaml.safe_load(path.read_text()) or {}).items():
            if name.endswith("_password") and value:
                assert str(value).startswith("{{ vault_"), f"{path.name}: {name} is not taken from the vault"


def test_readme_starts_with_the_two_commands_and_ci_calls_make_test() -> None:
    readme = (ROOT / "README.md").read_text()
    first_section = readme.split("## Phases")[0]
    assert "make demo" in first_section and "make test" in first_section
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert commands[-1] == "exec make test"


def test_every_playbook_opens_with_its_contract() -> None:
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        head = path.read_text().split("- name:")[0]
        assert "Safe to re-run" in head, f"{path.name} must say whether it is safe to re-run"


def test_run_migration_imports_only_playbooks_that_exist() -> None:
    plays = yaml.safe_load((ROOT / "run-migration.yml").read_text())
    for play in plays:
        assert Path(ROOT / play["ansible.builtin.import_playbook"]).exists()
