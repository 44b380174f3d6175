"""models.config and batching parameters writers, and the apps/serving deployment files.

Everything written is parsed back with google.protobuf.text_format into TF Serving's real
generated ``ModelServerConfig`` (tensorflow-serving-api, a core dependency: no skips). The
``BatchingParameters`` class that keras_cnn builds (the pip package does not ship
session_bundle_config_pb2) is cross-checked against a second, independently written declaration of
the upstream field table, byte for byte.
"""

import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from keras_cnn.export import (
    ServedModel,
    batching_parameters,
    batching_parameters_text,
    models_config,
    models_config_from_exports,
    models_config_text,
    scan_exports,
    write_batching_parameters,
    write_models_config,
)
from keras_cnn.export.serving_protos import batching_parameters_class

REPO = Path(__file__).resolve().parents[1]
SERVING = REPO / "apps" / "serving"
F = descriptor_pb2.FieldDescriptorProto
BatchingParameters = batching_parameters_class()


def _independent_batching_parameters():
    """tensorflow.serving.BatchingParameters declared from session_bundle_config.proto, by hand."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="check.proto", package="check", syntax="proto3", dependency=["google/protobuf/wrappers.proto"]
    )
    batching = proto.message_type.add(name="BatchingParameters")
    for number, name in enumerate(("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                                   "num_batch_threads"), start=1):
        batching.field.add(name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                           type_name=".google.protobuf.Int64Value")
    batching.field.add(name="thread_pool_name", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                       type_name=".google.protobuf.StringValue")
    batching.field.add(name="allowed_batch_sizes", number=6, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("check.BatchingParameters"))


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


def test_models_config_is_the_message_written_by_text_format():
    message = models_config(MODELS)
    assert isinstance(message, ModelServerConfig)
    assert text_format.Parse(models_config_text(MODELS), ModelServerConfig()) == message
    assert models_config_text(MODELS) == text_format.MessageToString(message)


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
    assert BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"


def test_batching_parameters_match_an_independent_declaration():
    message = batching_parameters(max_batch_size=16, allowed_batch_sizes=[8, 16], pad_variable_length_inputs=True)
    wire = message.SerializeToString(deterministic=True)
    check = _independent_batching_parameters().FromString(wire)
    assert check.SerializeToString(deterministic=True) == wire
    assert (check.max_batch_size.value, check.batch_timeout_micros.value, list(check.allowed_batch_sizes)) == (
        16, 2000, [8, 16])
    assert check.pad_variable_length_inputs


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
