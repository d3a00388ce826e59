#!/usr/bin/python
"""Ansible module: fill the sandbox with deterministic Neo4j and Redis data."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sandbox_seed
short_description: Fill the sandbox with a realistic graph and AgentDB, optionally with bad records
description:
  - Creates O(media_count) media nodes with normalised embeddings, users, genres, C(WATCHED),
    C(IN_GENRE) and C(SIMILAR_TO) relationships, the unique constraint on the media id and the
    vector index in Neo4j; and agents, q-values, policies and experience streams in Redis under
    the AgentDB layout of MISSION.md.
  - Always adds five valid media whose ids are hard to carry (quotes, backslashes, non-ASCII,
    the maximum length). With O(bad_records=true) also adds one record of every bad kind the
    migration must reject, listed with the expected reason in RV(bad_records) and O(manifest_file).
  - The same O(random_seed) and sizes give the same data. A store that already holds exactly this
    seed is left alone; a store holding anything else is refused unless O(reset=true).
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.NEO4J
  - hybrid_migration.REDIS
  - hybrid_migration.SOURCE
options:
  neo4j:
    required: true
  redis:
    required: true
  media_count:
    description: Number of valid media nodes.
    type: int
    default: 20000
  dimensions:
    description: Embedding dimension.
    type: int
    default: 768
  similarity_function:
    description: Similarity function of the Neo4j vector index.
    type: str
    choices: [cosine, euclidean]
    default: cosine
  user_count:
    description: Number of users; each watched O(watched_per_user) media.
    type: int
    default: 1000
  watched_per_user:
    description: C(WATCHED) relationships per user.
    type: int
    default: 20
  similar_per_media:
    description: C(SIMILAR_TO) relationships per media.
    type: int
    default: 3
  agent_count:
    description: Number of RL agents in Redis.
    type: int
    default: 20
  experiences_per_agent:
    description: Entries in each agent's experience stream.
    type: int
    default: 500
  qvalues_per_agent:
    description: Q-values drawn per agent (duplicates of a state and action collapse).
    type: int
    default: 200
  bad_records:
    description: Add the documented bad records.
    type: bool
    default: false
  random_seed:
    description: Seed of the generator.
    type: int
    default: 42
  id_max_length:
    description: Longest id the migration accepts; one tricky id has exactly this length and one bad id one more.
    type: int
    default: 512
  reset:
    description: Empty both stores (every Neo4j node, every Redis key under the prefix) first.
    type: bool
    default: false
  replace_other_data:
    description:
      - Empty a store that holds anything but this seed instead of failing. A store that already
        holds this seed is left alone, unlike O(reset).
    type: bool
    default: false
  manifest_file:
    description: JSON file that receives the fingerprint, counts, tricky ids and bad records.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Seed | Fill the sandbox with 20000 media and the bad-record catalogue
  sandbox_seed:
    neo4j: "{{ neo4j_connection }}"
    redis: "{{ redis_connection }}"
    source: "{{ neo4j_source }}"
    media_count: 20000
    bad_records: true
    manifest_file: "{{ sandbox_dir }}/seed-manifest.json"
"""

RETURN = r"""
fingerprint:
  description: Hash of the seed parameters, stored in both stores.
  returned: always
  type: str
  sample: 3f2a9c0d11e84b7a
neo4j:
  description: Action taken on Neo4j and the counts written.
  returned: always
  type: dict
  sample: {action: seed, media: 20000, users: 1000, watched: 20000, bad_media: 12}
redis:
  description: Action taken on Redis and the counts written.
  returned: always
  type: dict
  sample: {action: none, existing_items: 81}
bad_records:
  description: Every bad record with its store, key, kind and the reason the migration must give.
  returned: always
  type: list
  elements: dict
tricky_ids:
  description: Valid ids that must round-trip exactly.
  returned: always
  type: list
  elements: str
seconds:
  description: Time taken.
  returned: always
  type: float
"""

import json
from dataclasses import asdict
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    neo4j_argument_spec,
    redis_argument_spec,
    source_argument_spec,
)
from ansible.module_utils.hybrid_migration.connections import open_neo4j, open_redis
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.seed import SeedPlan, seed_sandbox
from ansible.module_utils.hybrid_migration.settings import Neo4jSettings, RedisSettings, SourceModel

PLAN_OPTIONS = {
    "media_count": 20000,
    "dimensions": 768,
    "user_count": 1000,
    "watched_per_user": 20,
    "similar_per_media": 3,
    "agent_count": 20,
    "experiences_per_agent": 500,
    "qvalues_per_agent": 200,
    "random_seed": 42,
    "id_max_length": 512,
}


def argument_spec() -> dict:
    options = {name: {"type": "int", "default": default} for name, default in PLAN_OPTIONS.items()}
    options.update(
        {
            "similarity_function": {"type": "str", "choices": ["cosine", "euclidean"], "default": "cosine"},
            "bad_records": {"type": "bool", "default": False},
            "reset": {"type": "bool", "default": False},
            "replace_other_data": {"type": "bool", "default": False},
            "manifest_file": {"type": "path"},
        }
    )
    return merge_specs(options, neo4j_argument_spec(), redis_argument_spec(), source_argument_spec())


def write_manifest(path: Path, content: dict) -> bool:
    """Write the manifest if it differs; True when the file changed."""
    text = json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)
    return True


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    plan = SeedPlan(
        bad_records=params["bad_records"],
        similarity_function=params["similarity_function"],
        **{name: params[name] for name in PLAN_OPTIONS},
    )
    try:
        neo4j_settings = Neo4jSettings.from_mapping(params["neo4j"])
        redis_settings = RedisSettings.from_mapping(params["redis"])
        model = SourceModel.from_mapping(params["source"])
        driver = open_neo4j(neo4j_settings)
        redis_client = open_redis(redis_settings)
        try:
            result = seed_sandbox(
                driver,
                neo4j_settings.database,
                redis_client,
                redis_settings.key_prefix,
                model,
                plan,
                reset=params["reset"],
                check_mode=module.check_mode,
                replace_other_data=params["replace_other_data"],
            )
        finally:
            driver.close()
            redis_client.close()
    except MigrationError as error:
        module.fail_json(msg=str(error))
    output = asdict(result)
    if params["manifest_file"] and not module.check_mode:
        manifest = {key: output[key] for key in ("fingerprint", "bad_records", "tricky_ids")}
        manifest["plan"] = asdict(plan)
        output["changed"] = write_manifest(Path(params["manifest_file"]), manifest) or output["changed"]
    actions = f"neo4j: {result.neo4j.get('action')}, redis: {result.redis.get('action')}"
    module.exit_json(diff={"before": "", "after": actions + "\n"} if result.changed else {}, **output)


if __name__ == "__main__":
    main()
