"""models.config and batching parameters writers, and the apps/serving deployment files.

The text protos are parsed with google.protobuf.text_format against message types declared here
with TF Serving's field names and numbers (tensorflow_serving/config/model_server_config.proto,
file_system_storage_path_source.proto, servables/tensorflow/session_bundle_config.proto), and
against the real generated classes when tensorflow-serving-api is installed.
"""

import importlib.util
import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

from keras_cnn.export import (
    ServedModel,
    batching_parameters_text,
    models_config_from_exports,
    models_config_text,
    scan_exports,
    write_batching_parameters,
    write_models_config,
)

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "apps" / "serving"
HAVE_TF_SERVING = importlib.util.find_spec("tensorflow_serving") is not None
F = descriptor_pb2.FieldDescriptorProto


def _messages():
    """ModelServerConfig and BatchingParameters built from their .proto field tables."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tfs_subset.proto", package="tfs", syntax="proto3", dependency=["google/protobuf/wrappers.proto"]
    )

    def field(msg, name, number, ftype, type_name=None, repeated=False, oneof=None):
        f = msg.field.add(name=name, number=number, type=ftype,
                          label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof

    policy = proto.message_type.add(name="ServableVersionPolicy")
    field(policy.nested_type.add(name="Latest"), "num_versions", 1, F.TYPE_UINT32)
    policy.nested_type.add(name="All")
    field(policy.nested_type.add(name="Specific"), "versions", 1, F.TYPE_INT64, repeated=True)
    policy.oneof_decl.add(name="policy_choice")
    for name, number in (("latest", 100), ("all", 101), ("specific", 102)):
        field(policy, name, number, F.TYPE_MESSAGE, f".tfs.ServableVersionPolicy.{name.title()}", oneof=0)

    config = proto.message_type.add(name="ModelConfig")
    field(config, "name", 1, F.TYPE_STRING)
    field(config, "base_path", 2, F.TYPE_STRING)
    field(config, "model_platform", 4, F.TYPE_STRING)
    field(config, "model_version_policy", 7, F.TYPE_MESSAGE, ".tfs.ServableVersionPolicy")
    entry = config.nested_type.add(name="VersionLabelsEntry")
    entry.options.map_entry = True
    field(entry, "key", 1, F.TYPE_STRING)
    field(entry, "value", 2, F.TYPE_INT64)
    field(config, "version_labels", 8, F.TYPE_MESSAGE, ".tfs.ModelConfig.VersionLabelsEntry", repeated=True)
    field(proto.message_type.add(name="ModelConfigList"), "config", 1, F.TYPE_MESSAGE, ".tfs.ModelConfig",
          repeated=True)
    field(proto.message_type.add(name="ModelServerConfig"), "model_config_list", 1, F.TYPE_MESSAGE,
          ".tfs.ModelConfigList")

    batching = proto.message_type.add(name="BatchingParameters")
    for number, name in enumerate(("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                                   "num_batch_threads"), start=1):
        field(batching, name, number, F.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    field(batching, "thread_pool_name", 5, F.TYPE_MESSAGE, ".google.protobuf.StringValue")
    field(batching, "allowed_batch_sizes", 6, F.TYPE_INT64, repeated=True)
    field(batching, "pad_variable_length_inputs", 7, F.TYPE_BOOL)
    pool.Add(proto)
    get = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tfs.{n}"))  # noqa: E731
    return get("ModelServerConfig"), get("BatchingParameters")


ModelServerConfig, BatchingParameters = _messages()

MODELS = [
    ServedModel("lenet5", "/models/lenet5"),
    ServedModel("resnet18", "/models/resnet18", [2, 1], labels={"stable": 1, "canary": 2}),
    {"name": "vgg11", "base_path": "/models/vgg11", "versions": "all"},
]


def test_models_config_parses_as_model_server_config():
    text = models_config_text(MODELS)
    config = text_format.Parse(text, ModelServerConfig())
    lenet, resnet, vgg = config.model_config_list.config
    assert (lenet.name, lenet.base_path, lenet.model_platform) == ("lenet5", "/models/lenet5", "tensorflow")
    assert lenet.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert lenet.model_version_policy.latest.num_versions == 1
    assert list(resnet.model_version_policy.specific.versions) == [1, 2]
    assert dict(resnet.version_labels) == {"stable": 1, "canary": 2}
    assert vgg.model_version_policy.WhichOneof("policy_choice") == "all"


@pytest.mark.skipif(not HAVE_TF_SERVING, reason="tensorflow-serving-api (the 'serving' extra) not installed")
def test_models_config_parses_with_the_real_proto():
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(models_config_text(MODELS), model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in config.model_config_list.config] == ["lenet5", "resnet18", "vgg11"]
    assert list(config.model_config_list.config[1].model_version_policy.specific.versions) == [1, 2]
    app = text_format.Parse((SERVING / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in app.model_config_list.config] == ["lenet5"]


@pytest.mark.parametrize(
    "models, match",
    [
        ([], "at least one"),
        ([ServedModel("a", "/m/a"), ServedModel("a", "/m/b")], "unique"),
        ([{"name": "a b", "base_path": "/m"}], "`name`"),
        ([{"name": "a", "base_path": ""}], "`base_path`"),
        ([{"name": "a", "base_path": "/m", "versions": "newest"}], "`versions`"),
        ([{"name": "a", "base_path": "/m", "versions": []}], "`versions`"),
        ([{"name": "a", "base_path": "/m", "versions": [1, -2]}], "`versions`"),
        ([{"name": "a", "base_path": "/m", "versions": [1], "labels": {"stable": 2}}], "`labels`"),
    ],
)
def test_models_config_rejects_bad_entries(models, match):
    with pytest.raises(ValueError, match=match):
        models_config_text(models)


def test_scan_exports_and_config_from_exports(tmp_path):
    for name, version in (("lenet5", "1"), ("lenet5", "3"), ("vgg11", "2")):
        (tmp_path / name / version).mkdir(parents=True)
        (tmp_path / name / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "lenet5" / "4").mkdir()  # no saved_model.pb: not a version
    (tmp_path / "lenet5" / ".5.tmp-x").mkdir()  # an export in progress
    (tmp_path / "empty").mkdir()
    assert scan_exports(tmp_path) == {"lenet5": [1, 3], "vgg11": [2]}
    config = text_format.Parse(models_config_from_exports(tmp_path, server_base="/models/"), ModelServerConfig())
    assert [(c.name, c.base_path, list(c.model_version_policy.specific.versions))
            for c in config.model_config_list.config] == [("lenet5", "/models/lenet5", [1, 3]),
                                                           ("vgg11", "/models/vgg11", [2])]
    path = write_models_config(tmp_path / "cfg" / "models.config", [ServedModel("lenet5", "/models/lenet5")])
    assert path.read_text() == models_config_text([ServedModel("lenet5", "/models/lenet5")])
    with pytest.raises(FileNotFoundError, match="`base_dir`"):
        models_config_from_exports(tmp_path / "empty")


def test_batching_parameters_parse():
    params = text_format.Parse(
        batching_parameters_text(max_batch_size=16, batch_timeout_micros=500, num_batch_threads=2,
                                 allowed_batch_sizes=[4, 8, 16], pad_variable_length_inputs=True),
        BatchingParameters(),
    )
    assert params.max_batch_size.value == 16 and params.batch_timeout_micros.value == 500
    assert params.max_enqueued_batches.value == 100 and params.num_batch_threads.value == 2
    assert list(params.allowed_batch_sizes) == [4, 8, 16] and params.pad_variable_length_inputs


def test_batching_parameters_validation(tmp_path):
    with pytest.raises(ValueError, match="`allowed_batch_sizes`"):
        batching_parameters_text(max_batch_size=16, allowed_batch_sizes=[4, 8])
    with pytest.raises(ValueError, match="`allowed_batch_sizes`"):
        batching_parameters_text(max_batch_size=16, allowed_batch_sizes=[8, 4, 16])
    with pytest.raises(ValueError, match="`max_batch_size`"):
        batching_parameters_text(max_batch_size=0)
    with pytest.raises(ValueError, match="`num_batch_threads`"):
        batching_parameters_text(num_batch_threads=1.5)
    path = write_batching_parameters(tmp_path / "b.txt", max_batch_size=8)
    assert text_format.Parse(path.read_text(), BatchingParameters()).max_batch_size.value == 8


def test_apps_serving_files_agree():
    config = text_format.Parse((SERVING / "models.config").read_text(), ModelServerConfig())
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [("lenet5", "/models/lenet5")]
    batching = text_format.Parse((SERVING / "batching_parameters.txt").read_text(), BatchingParameters())
    assert batching.max_batch_size.value >= 1 and batching.num_batch_threads.value >= 1
    compose = (SERVING / "docker-compose.yml").read_text()
    import tensorflow as tf

    major_minor = ".".join(tf.__version__.split(".")[:2])
    assert re.search(rf"image: tensorflow/serving:\$\{{TF_SERVING_TAG:-{re.escape(major_minor)}\.\d+\}}", compose)
    for needle in ('"8500:8500"', '"8501:8501"', "../../saved_models:/models",
                   "./models.config:/config/models.config", "--model_config_file=/config/models.config",
                   "--enable_batching=true", "--batching_parameters_file=/config/batching_parameters.txt",
                   "./batching_parameters.txt:/config/batching_parameters.txt"):
        assert needle in compose, needle
    readme = (SERVING / "README.md").read_text()
    for needle in (":predict", '"b64"', "serving_bytes", "prediction_service_pb2_grpc", "verify-export"):
        assert needle in readme, needle
