"""playbooks/awx-setup.yml without a controller: what it would create, and that the awx.awx modules accept it.

There is no AWX here. Check mode renders every object to objects.yml and contacts no controller, so the
tests read that file: a job template per phase tag found in the playbooks, surveys naming variables the
phases really read with the roles' own defaults, and no secret anywhere. The awx.awx tasks are checked
against the installed modules' documented options (as ansible-doc shows them), and one run against a closed port shows
the modules are really called, with accepted arguments, when a controller is asked.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, ansible_playbook, collection_module_documentation, documented_options, walk_tasks

TASKS = ROOT / "roles" / "awx_setup" / "tasks" / "main.yml"
SECRETS = {
    "neo4j_password": "neo4j-marker-5d1c",
    "milvus_password": "milvus-marker-77aa",
    "milvus_token": "milvus-token-marker-0b3e",
    "postgres_password": "postgres-marker-c9f0",
    "redis_password": "redis-marker-4e2d",
    "awx_setup_controller_password": "controller-marker-a81f",
    "awx_setup_controller_oauth_token": "oauth-marker-6c55",
}
CLAIM = "hybrid-migration-state"
# The rendered object each role variable holds (objects.yml's keys).
RENDERED_BY_VARIABLE = {
    "__awx_setup_organization": "organization",
    "__awx_setup_execution_environment": "execution_environment",
    "__awx_setup_credential_type": "credential_type",
    "__awx_setup_credential": "credential",
    "__awx_setup_project": "project",
    "__awx_setup_inventory": "inventory",
    "__awx_setup_inventory_source": "inventory_source",
    "__awx_setup_container_group": "container_group",
    "item": "job_templates",
}
# What the controller's survey_spec endpoint accepts as a question's default, by question type.
SURVEY_DEFAULT_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "textarea": (str,),
    "password": (str,),
    "multiplechoice": (str,),
    "multiselect": (str,),
    "integer": (int,),
    "float": (float, int),
}
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "dict": (dict,),
    "list": (list,),
}


def playbook(*arguments: str, inventory: str = "inventories/local") -> subprocess.CompletedProcess[str]:
    """ansible-playbook awx-setup.yml, with no controller in the environment."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("CONTROLLER_", "TOWER_"))}
    return ansible_playbook("playbooks/awx-setup.yml", "-i", inventory, *arguments, environment=environment)


def extra_variables(values: dict[str, str]) -> list[str]:
    return [part for name, value in values.items() for part in ("-e", f"{name}={value}")]


@pytest.fixture(scope="module")
def check_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    state = tmp_path_factory.mktemp("state")
    settings = {"migration_state_dir": str(state), "awx_setup_state_claim": CLAIM, **SECRETS}
    done = playbook("--check", "-v", *extra_variables(settings))
    return done, state / "awx" / "objects.yml"


@pytest.fixture(scope="module")
def objects(check_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    done, rendered = check_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return yaml.safe_load(rendered.read_text())


@pytest.fixture(scope="module")
def module_documentation() -> dict[str, Any]:
    """Each awx.awx module the tasks use, as ansible-doc shows it (fragments merged in)."""
    names = {name for task, _ in awx_tasks() for name in task if name.startswith("awx.awx.")}
    return collection_module_documentation(*sorted(names))


def phase_tags() -> dict[str, str]:
    """Tag -> playbook of every phase run-migration.yml imports (the phase's own play, not the shared checks)."""
    tags: dict[str, str] = {}
    for entry in yaml.safe_load((ROOT / "run-migration.yml").read_text()):
        path = entry["ansible.builtin.import_playbook"]
        for play in yaml.safe_load((ROOT / path).read_text()):
            if "hosts" in play:
                tags.update(dict.fromkeys(set(play.get("tags", [])) - {"always"}, path))
    return tags


def awx_tasks() -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    tasks = walk_tasks(yaml.safe_load(TASKS.read_text()))
    return [(task, guards) for task, guards in tasks if any(name.startswith("awx.awx.") for name in task)]


def role_files(role: str, seen: set[str]) -> list[Path]:
    """A role's defaults, vars and tasks, and those of the roles it includes."""
    if role in seen:
        return []
    seen.add(role)
    files = [path for part in ("defaults", "vars", "tasks") for path in (ROOT / "roles" / role / part).glob("*.yml")]
    for path in list(files):
        for included in re.findall(r"include_role:\s*\n\s*name:\s*([a-z_]+)", path.read_text()):
            files += role_files(included, seen)
    return files


def files_read_by(playbooks: list[str]) -> list[Path]:
    """The playbooks and every file of the roles their plays run."""
    files: list[Path] = []
    seen: set[str] = set()
    for path in playbooks:
        files.append(ROOT / path)
        for play in yaml.safe_load((ROOT / path).read_text()):
            for role in play.get("roles", []):
                files += role_files(role if isinstance(role, str) else role["role"], seen)
    return files


def variables_read(files: list[Path]) -> tuple[set[str], dict[str, list[Any]]]:
    """Names used in templates or defined as role defaults, and the fallback each `name | default(x)` gives."""
    names: set[str] = set()
    fallbacks: dict[str, list[Any]] = {}
    for path in files:
        text = path.read_text()
        for expression in re.findall(r"\{\{(.*?)\}\}", text, re.S):
            names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression))
            for name, fallback in re.findall(r"(?<![.\w])([a-z_][a-z0-9_]*)\s*\|\s*default\(([^()]*)\)", expression):
                fallbacks.setdefault(name, []).append(yaml.safe_load(f"[{fallback}]")[0])
        if path.parent.name == "defaults":
            for name, value in (yaml.safe_load(text) or {}).items():
                names.add(name)
                if not (isinstance(value, str) and "{{" in value):
                    fallbacks.setdefault(name, []).append(value)
    return names, fallbacks


def playbooks_of(template: dict[str, Any]) -> list[str]:
    if template["job_tags"]:
        return [phase_tags()[template["job_tags"]]]
    if template["playbook"] == "run-migration.yml":
        return sorted(set(phase_tags().values()))
    return [template["playbook"]]


def test_check_mode_passes_without_a_controller(check_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, rendered = check_run
    assert done.returncode == 0, done.stdout[-3000:]
    assert rendered.is_file()
    assert "no controller contacted" in done.stdout
    assert re.search(r"ok=\d+ +changed=\d+ +unreachable=0 +failed=0", done.stdout)


def test_there_is_one_job_template_per_phase_tag_with_that_tag(objects: dict[str, Any]) -> None:
    phases = [template for template in objects["job_templates"] if template["job_tags"]]
    assert sorted(template["job_tags"] for template in phases) == sorted(phase_tags())
    for template in phases:
        assert template["playbook"] == "run-migration.yml"
        assert template["name"].endswith(template["job_tags"]), template["name"]
        assert not template["ask_tags_on_launch"], f"{template['name']} must run its phase only"


def test_rollback_monitor_and_the_whole_run_have_templates(objects: dict[str, Any]) -> None:
    templates = objects["job_templates"]
    for template in templates:
        assert (ROOT / template["playbook"]).is_file(), template["playbook"]
    playbooks = {template["playbook"] for template in templates if not template["job_tags"]}
    assert {"playbooks/rollback.yml", "playbooks/monitor.yml", "run-migration.yml"} <= playbooks
    (whole,) = [t for t in templates if t["playbook"] == "run-migration.yml" and not t["job_tags"]]
    assert whole["ask_tags_on_launch"] and whole["ask_skip_tags_on_launch"]
    assert len({template["name"] for template in templates}) == len(templates)


def test_every_template_runs_with_the_secrets_in_the_execution_environment(objects: dict[str, Any]) -> None:
    group = objects["container_group"]
    assert f"claimName: {CLAIM}" in group["pod_spec_override"]
    for template in objects["job_templates"]:
        assert template["credentials"] == [objects["credential"]["name"]]
        assert template["execution_environment"] == objects["execution_environment"]["name"]
        assert template["project"] == objects["project"]["name"]
        assert template["inventory"] == objects["inventory"]["name"]
        assert group["name"] in template["instance_groups"]
        assert template["ask_job_type_on_launch"], "Check (the dry run) must be choosable at launch"


def test_surveys_ask_for_variables_the_phases_read_with_their_defaults(objects: dict[str, Any]) -> None:
    for template in objects["job_templates"]:
        survey = template["survey_spec"]
        assert template["survey_enabled"] and survey["name"] and survey["description"] and survey["spec"]
        names, fallbacks = variables_read(files_read_by(playbooks_of(template)))
        variables = [question["variable"] for question in survey["spec"]]
        assert len(set(variables)) == len(variables), template["name"]
        for question in survey["spec"]:
            where = f"{template['name']}: {question['variable']}"
            assert question["variable"] in names, f"{where} is read by none of {playbooks_of(template)}"
            assert question["type"] in SURVEY_DEFAULT_TYPES, where
            assert all(isinstance(question[key], str) for key in ("question_name", "question_description")), where
            assert isinstance(question["required"], bool), where
            limits = [question[key] for key in ("min", "max") if key in question]
            assert all(isinstance(limit, int) and not isinstance(limit, bool) for limit in limits), f"{where}: limits"
            if "default" not in question:
                continue
            default = question["default"]
            assert isinstance(default, SURVEY_DEFAULT_TYPES[question["type"]]), f"{where}: default type"
            if question["type"] == "multiplechoice":
                assert default in question["choices"], where
                if set(question["choices"]) == {"true", "false"}:
                    default = default == "true"
            if question["type"] in ("integer", "float"):
                assert not isinstance(default, bool) and question["min"] <= default <= question["max"], where
            assert fallbacks.get(question["variable"]), f"{where}: the phase has no default to compare with"
            assert all(fallback == default for fallback in fallbacks[question["variable"]]), (
                f"{where}: survey default {default!r}, the phase's {fallbacks[question['variable']]}"
            )


def test_the_credential_injects_the_inventory_secrets(objects: dict[str, Any]) -> None:
    credential_type = objects["credential_type"]
    fields = {field["id"]: field for field in credential_type["inputs"]["fields"]}
    injected = credential_type["injectors"]["extra_vars"]
    assert set(injected) == set(fields) == set(objects["credential"]["inputs"])
    for name, value in injected.items():
        assert value == "{{ " + name + " }}", name
        assert fields[name]["secret"] is True, name
        for inventory in ("local", "example-production"):
            text = "".join(path.read_text() for path in (ROOT / "inventories" / inventory).rglob("*.yml"))
            assert re.search(rf"^{name}:", text, re.M), f"{name} is not an inventory variable of {inventory}"
    every_password = set()
    for path in (ROOT / "inventories" / "local" / "group_vars" / "all").glob("*.yml"):
        every_password |= {name for name in yaml.safe_load(path.read_text()) if name.endswith("_password")}
    assert every_password <= set(injected)


def test_no_secret_is_printed_or_rendered(check_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, rendered = check_run
    for name, value in SECRETS.items():
        assert value not in done.stdout + done.stderr, f"{name} printed"
        assert value not in rendered.read_text(), f"{name} rendered"
    shown = yaml.safe_load(rendered.read_text())["credential"]["inputs"]
    assert set(shown.values()) == {"set, never shown"}


def test_awx_tasks_use_only_options_the_modules_document(module_documentation: dict[str, Any]) -> None:
    for task, _ in awx_tasks():
        (module,) = [name for name in task if name.startswith("awx.awx.")]
        options = module_documentation[module]["options"]
        accepted = documented_options(module_documentation[module])
        arguments = task[module]
        assert set(arguments) <= accepted, f"{task['name']}: {module} has no {sorted(set(arguments) - accepted)}"
        required = {name for name, option in options.items() if option.get("required")}
        assert required <= set(arguments), f"{task['name']}: {module} needs {sorted(required - set(arguments))}"
        for name, value in arguments.items():
            literal = not (isinstance(value, str) and "{{" in value)
            if literal and "choices" in options[name]:
                assert value in options[name]["choices"], f"{task['name']}: {name}={value!r}"
            if literal and options[name].get("type", "str") in PYTHON_TYPES:
                assert isinstance(value, PYTHON_TYPES[options[name].get("type", "str")]), f"{task['name']}: {name}"


def test_the_rendered_objects_are_what_the_tasks_send(
    objects: dict[str, Any], module_documentation: dict[str, Any]
) -> None:
    """Every rendered field goes to its module, with the type the module documents."""
    sent: dict[str, set[str]] = {}
    for task, _ in awx_tasks():
        (module,) = [name for name in task if name.startswith("awx.awx.")]
        options = module_documentation[module]["options"]
        for name, value in task[module].items():
            match = re.fullmatch(r"\{\{ (\w+)\.(\w+)( or omit)? \}\}", str(value))
            if not match or match.group(1) not in RENDERED_BY_VARIABLE:
                continue
            rendered = objects[RENDERED_BY_VARIABLE[match.group(1)]]
            sent.setdefault(RENDERED_BY_VARIABLE[match.group(1)], set()).add(match.group(2))
            for instance in rendered if isinstance(rendered, list) else [rendered]:
                field = instance[match.group(2)]
                if match.group(3) and field in ("", None):
                    continue
                expected = PYTHON_TYPES.get(options[name].get("type", "str"), (object,))
                assert isinstance(field, expected), f"{task['name']}: {name}={field!r} is not {expected}"
    for key, fields in sent.items():
        rendered = objects[key][0] if key == "job_templates" else objects[key]
        assert set(rendered) - fields <= {"inputs"}, f"{key}: rendered but not sent: {set(rendered) - fields}"


def test_awx_modules_run_only_when_a_controller_is_meant(module_documentation: dict[str, Any]) -> None:
    auth = set(module_documentation["awx.awx.organization"]["options"])
    blocks = [task for task, _ in walk_tasks(yaml.safe_load(TASKS.read_text())) if "module_defaults" in task]
    (block,) = blocks
    assert set(block["module_defaults"]) == {"group/awx.awx.controller"}
    assert set(block["module_defaults"]["group/awx.awx.controller"]) <= auth
    runtime = Path(module_documentation["awx.awx.organization"]["filename"]).parents[2] / "meta" / "runtime.yml"
    group = yaml.safe_load(runtime.read_text())["action_groups"]["controller"]
    for task, guards in awx_tasks():
        (module,) = [name for name in task if name.startswith("awx.awx.")]
        assert module.removeprefix("awx.awx.") in group, f"{module} does not get the controller settings"
        assert any("__awx_setup_applies" in guard for guard in guards), f"{task['name']} would run in check mode"
        if module == "awx.awx.credential":
            assert task.get("no_log") is True, "the credential task carries the passwords"


def test_asking_a_controller_calls_the_modules_with_accepted_arguments(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = {
        "migration_state_dir": str(tmp_path),
        "awx_setup_check_against_controller": "true",
        "awx_setup_controller_host": f"http://127.0.0.1:{port}",
        "awx_setup_project_scm_url": "https://git.example.internal/hybrid-migration.git",
        "awx_setup_controller_username": "admin",
        **SECRETS,
    }
    done = playbook("--check", *extra_variables(settings))
    assert done.returncode != 0
    assert "Ensure the organization" in done.stdout and "Connection refused" in done.stdout, done.stdout[-2000:]
    assert "Unsupported parameters" not in done.stdout
    for name, value in SECRETS.items():
        assert value not in done.stdout + done.stderr, f"{name} printed"


def test_applying_without_a_controller_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = playbook("-e", f"migration_state_dir={tmp_path}")
    assert done.returncode != 0
    assert "set awx_setup_controller_host (or CONTROLLER_HOST) and awx_setup_project_scm_url" in done.stdout
    assert not (tmp_path / "awx").exists()


def test_without_the_vault_secrets_are_shown_unresolved_and_never_stored_empty(tmp_path: Path) -> None:
    """The production inventory takes its passwords from vault_* variables; without them nothing is applied."""
    dry_run = playbook("--check", "-e", f"migration_state_dir={tmp_path}", inventory="inventories/example-production")
    assert dry_run.returncode == 0, dry_run.stdout[-2000:]
    shown = yaml.safe_load((tmp_path / "awx" / "objects.yml").read_text())["credential"]["inputs"]
    assert shown["neo4j_password"] == shown["postgres_password"] == shown["redis_password"] == "unresolved"
    assert "unresolved secrets, refused when applying: neo4j_password" in dry_run.stdout
    settings = {
        "migration_state_dir": str(tmp_path),
        "awx_setup_check_against_controller": "true",
        "awx_setup_controller_host": "http://127.0.0.1:9",
        "awx_setup_project_scm_url": "https://git.example.internal/hybrid-migration.git",
    }
    applied = playbook("--check", *extra_variables(settings), inventory="inventories/example-production")
    assert applied.returncode != 0
    assert "cannot be resolved (their vault_* variables are undefined)" in applied.stdout
    assert "Ensure the organization" not in applied.stdout
