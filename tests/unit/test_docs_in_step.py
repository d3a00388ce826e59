"""Docs that describe data and settings must list exactly what the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


PLAYBOOK_PATH = re.compile(r"(?<![\w-])playbooks/([\w.-]+\.yml)")
EXTRA_VARS = re.compile(r"(?:-e|--extra-vars)\s+('[^']*'|\"[^\"]*\"|[^\s`'\"]+)")
# Where a variable an operator passes with -e must be read: outside docs, in the runbook itself.
RUNBOOK_PLACES = ("roles", "playbooks", "inventories")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def extra_var_names(text: str) -> set[str]:
    """Names given with -e: `-e name=value`, `-e 'a=1 b=2'` and `-e '{"name": value}'`."""
    names: set[str] = set()
    for match in EXTRA_VARS.finditer(text):
        argument = match.group(1).strip("'\"")
        if argument.startswith("{"):
            names |= set(re.findall(r'"(\w+)"\s*:', argument))
        else:
            names |= {token.split("=", 1)[0] for token in argument.split() if "=" in token}
    return names


def runbook_text() -> str:
    """The text of everything that reads variables: roles, playbooks, inventories, run-migration.yml."""
    paths = [ROOT / "run-migration.yml"]
    for place in RUNBOOK_PLACES:
        paths += [path for path in (ROOT / place).rglob("*") if path.is_file() and path.suffix != ".md"]
    return "\n".join(path.read_text(errors="replace") for path in paths)


def test_every_playbook_the_docs_name_exists() -> None:
    missing = {
        f"{path.relative_to(ROOT)}: playbooks/{name}"
        for path in markdown_files()
        for name in PLAYBOOK_PATH.findall(path.read_text())
        if not (ROOT / "playbooks" / name).is_file()
    }
    assert sorted(missing) == []


@pytest.mark.parametrize("page", ["migration-guide.md", "troubleshooting.md"])
def test_every_extra_variable_the_guides_pass_is_read_by_the_runbook(page: str) -> None:
    names = extra_var_names((ROOT / "docs" / page).read_text())
    assert names, f"docs/{page} passes no -e variables; the pattern no longer matches"
    text = runbook_text()
    unread = sorted(name for name in names if not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text))
    assert unread == [], f"docs/{page} passes variables nothing in the runbook reads: {unread}"


def test_extra_variables_are_parsed_in_every_form_the_docs_use() -> None:
    text = """-e batch_size=1000 [-e resume_from=ID] -e '{"sandbox_services": ["neo4j"]}'
    `-e full_scan=true` --extra-vars "a=1 b=2" -e '{"resume_from": "media-1"}'"""
    assert extra_var_names(text) == {"batch_size", "resume_from", "sandbox_services", "full_scan", "a", "b"}


def test_every_variable_a_role_reads_from_outside_is_documented() -> None:
    """A role default of the form ``{{ name | default(...) }}`` is a setting users pass; each has a row."""
    text = (ROOT / "docs" / "variables.md").read_text()
    roles = [path.name for path in (ROOT / "roles").iterdir() if path.is_dir()]
    missing = []
    for defaults in sorted((ROOT / "roles").glob("*/defaults/main.yml")):
        for name in re.findall(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\|\s*default\(", defaults.read_text()):
            if not any(name.startswith(f"{role}_") for role in roles) and f"`{name}`" not in text:
                missing.append(f"{defaults.parts[-3]}: {name}")
    assert missing == []
