from __future__ import annotations

import numpy as np
from ansible.module_utils.hybrid_migration.milvus_writer import MilvusWriter, packed_floats
from pymilvus.grpc_gen import schema_pb2


def test_packed_floats_parse_back_to_the_same_float32_values() -> None:
    vectors = np.random.default_rng(3).standard_normal((300, 768)).astype(np.float64)
    parsed = schema_pb2.FloatArray.FromString(packed_floats(vectors))
    assert np.array_equal(np.asarray(parsed.data, dtype=np.float32), vectors.astype(np.float32).ravel())


def test_request_holds_every_column() -> None:
    writer = MilvusWriter(client=None, collection="media_embeddings")  # type: ignore[arg-type]
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    request = writer.build_request(['a"1', "b\\2"], vectors, np.asarray([5, 6], dtype=np.int64))
    fields = {field.field_name: field for field in request.fields_data}
    assert request.num_rows == 2 and request.collection_name == "media_embeddings"
    assert list(fields["id"].scalars.string_data.data) == ['a"1', "b\\2"]
    assert fields["embedding"].vectors.dim == 4
    assert list(fields["embedding"].vectors.float_vector.data) == list(range(8))
    assert list(fields["updated_at"].scalars.long_data.data) == [5, 6]
