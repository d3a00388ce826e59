"""The Milvus collection of MISSION.md's data model: plan, compare, create, load.

The plan is a pure function of the desired spec and what Milvus describes, so
check mode, diff and the real run share one code path. An existing collection
whose schema cannot hold the data (dimension, metric, primary key) is refused,
never altered or dropped: that would lose data the operator may still need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import TerminalError

if TYPE_CHECKING:
    from pymilvus import MilvusClient

HNSW_PROFILES: dict[str, dict[str, int]] = {
    "high_accuracy": {"M": 32, "efConstruction": 512},
    "balanced": {"M": 16, "efConstruction": 256},
    "fast": {"M": 8, "efConstruction": 128},
}
NEO4J_TO_MILVUS_METRIC = {"cosine": "COSINE", "euclidean": "L2"}
ID_FIELD, VECTOR_FIELD, UPDATED_AT_FIELD = "id", "embedding", "updated_at"


@dataclass(frozen=True)
class CollectionSpec:
    """What the collection must look like."""

    name: str
    dimension: int
    metric: str
    hnsw_m: int
    hnsw_ef_construction: int
    id_max_length: int = 512

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": {
                ID_FIELD: f"VARCHAR({self.id_max_length}) primary key, no auto id",
                VECTOR_FIELD: f"FLOAT_VECTOR({self.dimension})",
                UPDATED_AT_FIELD: "INT64",
            },
            "index": {
                "type": "HNSW",
                "metric": self.metric,
                "M": self.hnsw_m,
                "efConstruction": self.hnsw_ef_construction,
            },
        }


def hnsw_parameters(profile: str, m: int | None, ef_construction: int | None) -> tuple[int, int]:
    """HNSW M and efConstruction from a profile, each overridable.

    Raises:
        TerminalError: unknown profile or out-of-range values.
    """
    if profile not in HNSW_PROFILES:
        raise TerminalError(f"unknown hnsw_profile {profile!r}; choose one of {', '.join(HNSW_PROFILES)}")
    chosen_m = m if m is not None else HNSW_PROFILES[profile]["M"]
    chosen_ef = ef_construction if ef_construction is not None else HNSW_PROFILES[profile]["efConstruction"]
    if not 2 <= chosen_m <= 2048:
        raise TerminalError(f"hnsw_m {chosen_m} is outside Milvus's range 2..2048")
    if not 1 <= chosen_ef <= 65535:
        raise TerminalError(f"hnsw_ef_construction {chosen_ef} is outside Milvus's range 1..65535")
    return chosen_m, chosen_ef


@dataclass
class ObservedCollection:
    """What Milvus says about the collection (or that it is absent)."""

    exists: bool
    id_type: str | None = None
    id_max_length: int | None = None
    auto_id: bool | None = None
    dimension: int | None = None
    fields: list[str] = field(default_factory=list)
    index: dict[str, Any] | None = None
    loaded: bool = False
    row_count: int = 0


@dataclass
class CollectionPlan:
    """The actions that bring the observed collection to the spec."""

    actions: list[str]
    problems: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def plan_collection(spec: CollectionSpec, observed: ObservedCollection) -> CollectionPlan:
    """Compare and list actions; incompatible schemas become problems, never actions."""
    if not observed.exists:
        return CollectionPlan(["create collection", "create index", "load collection"], [])
    problems = []
    if observed.id_type != "VARCHAR" or observed.auto_id:
        problems.append(
            f"primary key {ID_FIELD!r} is {observed.id_type}{' with auto id' if observed.auto_id else ''}, "
            "expected VARCHAR without auto id"
        )
    elif observed.id_max_length is not None and observed.id_max_length < spec.id_max_length:
        problems.append(f"primary key holds {observed.id_max_length} bytes, {spec.id_max_length} needed")
    if observed.dimension != spec.dimension:
        problems.append(f"vector field {VECTOR_FIELD!r} is {observed.dimension}-d, expected {spec.dimension}-d")
    missing = [name for name in (ID_FIELD, VECTOR_FIELD, UPDATED_AT_FIELD) if name not in observed.fields]
    if missing:
        problems.append(f"fields {missing} are missing")
    index = observed.index
    if index and index.get("metric_type") != spec.metric:
        problems.append(f"index metric is {index.get('metric_type')}, expected {spec.metric}")
    if problems:
        return CollectionPlan([], problems)
    actions = []
    wanted = {"index_type": "HNSW", "M": spec.hnsw_m, "efConstruction": spec.hnsw_ef_construction}
    if index is None:
        actions.append("create index")
    elif {key: index.get(key) for key in wanted} != wanted:
        actions.append("rebuild index")
    if not observed.loaded or actions:
        actions.append("load collection")
    return CollectionPlan(actions, [])


def observe(client: MilvusClient, name: str) -> ObservedCollection:
    """Describe the collection, its vector index and load state."""
    if not client.has_collection(name):
        return ObservedCollection(exists=False)
    description = client.describe_collection(name)
    observed = ObservedCollection(exists=True, auto_id=bool(description.get("auto_id")))
    for field_info in description.get("fields", []):
        observed.fields.append(field_info["name"])
        params = field_info.get("params", {}) or {}
        type_name = getattr(field_info["type"], "name", str(field_info["type"]))
        if field_info.get("is_primary"):
            observed.id_type = type_name
            if "max_length" in params:
                observed.id_max_length = int(params["max_length"])
        if field_info["name"] == VECTOR_FIELD and "dim" in params:
            observed.dimension = int(params["dim"])
    for index_name in client.list_indexes(name, field_name=VECTOR_FIELD):
        info = client.describe_index(name, index_name)
        observed.index = {
            "name": index_name,
            "index_type": info.get("index_type"),
            "metric_type": info.get("metric_type"),
            "M": int(info["M"]) if "M" in info else None,
            "efConstruction": int(info["efConstruction"]) if "efConstruction" in info else None,
        }
    state = client.get_load_state(name).get("state")
    observed.loaded = getattr(state, "name", str(state)) == "Loaded"
    if observed.loaded:  # exact, deletes and upserts applied; the stats count rows not yet compacted away
        observed.row_count = int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])
    else:
        observed.row_count = int(client.get_collection_stats(name).get("row_count", 0))
    return observed


def apply_plan(client: MilvusClient, spec: CollectionSpec, plan: CollectionPlan, observed: ObservedCollection) -> None:
    """Carry out the plan's actions in order."""
    from pymilvus import DataType, MilvusClient

    if "create collection" in plan.actions:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=spec.id_max_length)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=spec.dimension)
        schema.add_field(UPDATED_AT_FIELD, DataType.INT64)
        client.create_collection(spec.name, schema=schema, consistency_level="Strong")
    if "rebuild index" in plan.actions:
        client.release_collection(spec.name)
        client.drop_index(spec.name, observed.index["name"] if observed.index else VECTOR_FIELD)
    if "create index" in plan.actions or "rebuild index" in plan.actions:
        index_params = MilvusClient.prepare_index_params()
        index_params.add_index(
            field_name=VECTOR_FIELD,
            index_type="HNSW",
            metric_type=spec.metric,
            params={"M": spec.hnsw_m, "efConstruction": spec.hnsw_ef_construction},
        )
        client.create_index(spec.name, index_params)
    if "load collection" in plan.actions:
        client.load_collection(spec.name)


def ensure_collection(client: MilvusClient, spec: CollectionSpec, check_mode: bool) -> dict[str, Any]:
    """Make the collection match ``spec``; in check mode only report the plan.

    Raises:
        TerminalError: the existing collection is incompatible with the spec.
    """
    observed = observe(client, spec.name)
    plan = plan_collection(spec, observed)
    if plan.problems:
        raise TerminalError(
            f"collection {spec.name!r} exists with an incompatible schema ({'; '.join(plan.problems)}); "
            "it is left untouched: migrate into another collection (milvus_collection) or remove it yourself"
        )
    if plan.changed and not check_mode:
        apply_plan(client, spec, plan, observed)
    return {
        "changed": plan.changed,
        "actions": plan.actions,
        "collection": spec.describe(),
        "before": asdict(observed),
        "row_count": observed.row_count,
    }


def drop_collection(client: MilvusClient, name: str, confirm: bool, check_mode: bool) -> dict[str, Any]:
    """Remove the collection and its data; refused without ``confirm``, and says what it holds.

    Raises:
        TerminalError: the collection exists and ``confirm`` is false.
    """
    observed = observe(client, name)
    if not observed.exists:
        return {"changed": False, "actions": [], "before": asdict(observed), "row_count": 0}
    if not confirm:
        raise TerminalError(
            f"dropping collection {name!r} deletes its {observed.row_count} rows; set confirm_drop=true to do it"
        )
    if not check_mode:
        client.drop_collection(name)
    return {
        "changed": True,
        "actions": [f"drop collection ({observed.row_count} rows)"],
        "before": asdict(observed),
        "row_count": observed.row_count,
    }


def resolve_spec(
    name: str,
    index: dict[str, Any] | None,
    dimension: int | None,
    metric: str | None,
    hnsw_profile: str,
    hnsw_m: int | None,
    hnsw_ef_construction: int | None,
    id_max_length: int,
) -> CollectionSpec:
    """The collection spec, taking dimension and metric from the Neo4j vector index unless given.

    Raises:
        TerminalError: neither the index nor the options give a dimension or a metric.
    """
    from_index_metric = NEO4J_TO_MILVUS_METRIC.get((index or {}).get("similarity_function", ""))
    chosen_metric = metric or from_index_metric
    chosen_dimension = dimension or (index or {}).get("dimension")
    if chosen_metric is None or chosen_dimension is None:
        missing = " and ".join(
            word for word, value in (("metric", chosen_metric), ("dimension", chosen_dimension)) if value is None
        )
        raise TerminalError(
            f"cannot tell the collection's {missing}: Neo4j has no usable vector index "
            f"({'none' if index is None else index.get('name')}) and none was given "
            "(milvus_metric, migration_dimension)"
        )
    m, ef_construction = hnsw_parameters(hnsw_profile, hnsw_m, hnsw_ef_construction)
    return CollectionSpec(name, int(chosen_dimension), chosen_metric, m, ef_construction, id_max_length)
