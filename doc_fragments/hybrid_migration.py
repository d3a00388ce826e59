"""Option documentation shared by the modules in library/."""

from __future__ import annotations


class ModuleDocFragment:
    NEO4J = r"""
options:
  neo4j:
    description: Connection to the Neo4j source (the inventory's C(neo4j_connection)).
    type: dict
    suboptions:
      uri:
        description: Bolt or neo4j URI.
        type: str
        default: bolt://127.0.0.1:7687
      user:
        description: User name.
        type: str
        default: neo4j
      password:
        description: Password; never logged.
        type: str
        required: true
      database:
        description: Database holding the graph.
        type: str
        default: neo4j
      connect_timeout:
        description: Seconds to wait for a connection.
        type: float
        default: 10.0
"""

    MILVUS = r"""
options:
  milvus:
    description: Connection to Milvus (the inventory's C(milvus_connection)).
    type: dict
    suboptions:
      uri:
        description: Milvus endpoint.
        type: str
        default: http://127.0.0.1:19530
      token:
        description: API token (C(user:password) or a cloud key); never logged.
        type: str
        default: ''
      user:
        description: User name when authentication is on and no token is given.
        type: str
        default: ''
      password:
        description: Password of O(milvus.user); never logged.
        type: str
        default: ''
      db_name:
        description: Milvus database.
        type: str
        default: default
      timeout:
        description: Seconds to wait for the server.
        type: float
        default: 10.0
"""

    POSTGRES = r"""
options:
  postgres:
    description: Connection to the PostgreSQL AgentDB target (the inventory's C(postgres_connection)).
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        default: 127.0.0.1
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to log in as.
        type: str
        default: migration
      password:
        description: Password of the role; never logged.
        type: str
        required: true
      database:
        description: Database.
        type: str
        default: agentdb
      connect_timeout:
        description: Seconds to wait for a connection.
        type: int
        default: 10
      sslmode:
        description: libpq C(sslmode).
        type: str
        default: prefer
"""

    REDIS = r"""
options:
  redis:
    description: Connection to the Redis AgentDB source (the inventory's C(redis_connection)).
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        default: 127.0.0.1
      port:
        description: Port.
        type: int
        default: 6379
      username:
        description: ACL user name, empty for the default user.
        type: str
        default: ''
      password:
        description: Password; never logged.
        type: str
        default: ''
      db:
        description: Database number.
        type: int
        default: 0
      key_prefix:
        description: Prefix of every AgentDB key.
        type: str
        default: 'agentdb:'
      connect_timeout:
        description: Seconds to wait for a connection.
        type: float
        default: 10.0
"""

    SOURCE = r"""
options:
  source:
    description: Where the embeddings sit in the graph (the inventory's C(neo4j_source)).
    type: dict
    default: {}
    suboptions:
      label:
        description: Label of the nodes that carry embeddings.
        type: str
        default: Media
      id_property:
        description: Property holding each node's unique id.
        type: str
        default: id
      embedding_property:
        description: Property holding the embedding (a list of floats).
        type: str
        default: embedding
      updated_at_property:
        description: Property holding the last change time in epoch milliseconds.
        type: str
        default: updated_at
      vector_index:
        description: Name of the Neo4j vector index over the embeddings.
        type: str
        default: media_embedding
"""

    COPY_RUN = r"""
options:
  retry_attempts:
    description: Tries of a failing read or write before giving up; the checkpoint stays intact, so a re-run resumes.
    type: int
    default: 10
  retry_initial_delay:
    description: Seconds before the first retry; doubles each time.
    type: float
    default: 0.5
  retry_max_delay:
    description: Longest wait between retries, in seconds.
    type: float
    default: 20.0
  pushgateway_url:
    description: Pushgateway to push progress to; empty to push nothing.
    type: str
    default: ''
  metrics_interval:
    description: Seconds between pushes.
    type: float
    default: 5.0
"""
