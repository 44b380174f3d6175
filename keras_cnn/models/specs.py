"""What keras_cnn knows about each network and each set of pretrained weights, as data.

This module is the single source of truth: one :class:`ModelSpec` per registry entry and one
:class:`WeightsSpec` per set of pretrained weights, keras.applications' and timm's alike. Builders
read their default and minimum input size from their spec and resolve a ``weights`` argument here
(:func:`weights_name`, :func:`get_weights_spec`); the weights package (`keras_cnn.weights`),
transfer learning, training, export, the ``keras-cnn list`` command and the README's tables read
the rest. Nothing here imports Keras or TensorFlow, so listing the zoo is instant.

Adding a network = a ``ModelSpec`` here + a builder decorated with
``keras_cnn.models.identity.registered_builder(name)``; ``tests/test_registry_contract.py``
then checks it (build, forward pass, ``.keras`` round trip, parameter count, stage taps,
preprocessing, minimum size, auxiliary heads) without a test file to edit.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from typing import Mapping

__all__ = [
    "PREPROCESSING_MODES",
    "MODEL_SPECS",
    "RESNET_DEPTHS",
    "RESNET_WIDTHS",
    "VGG_DEPTHS",
    "VGG_FC",
    "VGG_WIDTHS",
    "WEIGHTS_SPECS",
    "ModelSpec",
    "TIMM_FILENAME",
    "WEIGHTS_FILE_SUFFIXES",
    "WeightsFileNotFoundError",
    "WeightsFileSpec",
    "WeightsSpec",
    "add_model_spec",
    "add_weights_spec",
    "get_model_spec",
    "get_weights_spec",
    "is_weights_name",
    "list_models",
    "list_weights",
    "merge_weights_build_args",
    "source_build_args",
    "weights_build_args",
    "weights_name",
]

#: Pixel preprocessing modes: "tf" (x / 127.5 - 1), "caffe" (RGB->BGR, ImageNet mean
#: subtracted), "torch" (x / 255, ImageNet mean/std), "unit" (x / 255).
PREPROCESSING_MODES = ("tf", "caffe", "torch", "unit")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One network of the zoo.

    Attributes:
        name: registry key, e.g. "resnet50".
        family: "lenet", "alexnet", "vgg", "plain", "resnet", "googlenet", "inception_v2", ...
        builder_path: ``"module:function"`` of the keras.applications-style builder (imported on
            use; :attr:`builder` is the function).
        default_size: default input height = width.
        min_size: smallest input height = width accepted (``include_top=False``).
        channels: default input channels.
        preprocessing: pixel preprocessing the network expects when trained from scratch by the
            recipes of this package, one of :data:`PREPROCESSING_MODES` (pretrained weights
            carry their own, see :class:`WeightsSpec`).
        stages: feature taps, stage name -> layer name, shallow to deep.
        aux_heads: auxiliary classifiers the network grows with ``aux_logits=True``.
        num_params: ``count_params()`` of the default build (top, 1000 classes) -- the figure we
            are held to; includes BatchNormalization's moving statistics.
        trainable_params: trainable parameters of the default build (torchvision's figure for
            the torchvision-layout networks).
        paper: the reference, with the section or table the network follows.
        twin: the keras.applications class this network mirrors layer for layer, or None.
        description: one line for listings.
    """

    name: str
    family: str
    builder_path: str
    default_size: int
    min_size: int
    num_params: int | None = None
    trainable_params: int | None = None
    paper: str = ""
    channels: int = 3
    preprocessing: str = "tf"
    stages: Mapping[str, str] = dataclasses.field(default_factory=dict)
    aux_heads: int = 0
    twin: str | None = None
    description: str = ""

    def __post_init__(self):
        if self.preprocessing not in PREPROCESSING_MODES:
            raise ValueError(
                f"`preprocessing` must be one of {list(PREPROCESSING_MODES)}. "
                f"Received: preprocessing={self.preprocessing!r} for {self.name!r}"
            )
        if not 0 < self.min_size <= self.default_size:
            raise ValueError(f"{self.name}: need 0 < min_size <= default_size. Received: {self.min_size}, {self.default_size}")
        object.__setattr__(self, "stages", dict(self.stages))

    @property
    def default_input_shape(self):
        """``(default_size, default_size, channels)``."""
        return (self.default_size, self.default_size, self.channels)

    @property
    def builder(self):
        """The builder function (its module is imported on first use)."""
        import importlib

        module, _, attr = self.builder_path.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class WeightsFileSpec:
    """One downloadable file of a :class:`WeightsSpec`.

    Attributes:
        fname: file name in the cache.
        url: where it is downloaded from.
        file_hash: its hash (``hash_algorithm``), checked after download; "" when unpublished.
        include_top: True/False for a file with/without the classifier; None when one file
            serves both (the classifier is skipped for ``include_top=False``).
        hash_algorithm: "md5" (keras.applications) or "sha256".
    """

    fname: str
    url: str
    file_hash: str = ""
    include_top: bool | None = None
    hash_algorithm: str = "md5"


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """One set of pretrained weights for a registry network, whatever its source.

    The one record type of keras_cnn's weights: keras.applications' ``.h5`` files and timm's
    safetensors files alike. It says what the weights are (files, source, license, published
    accuracy) and how to feed them (input size, pixel preprocessing, the evaluation crop and
    resize). It is also the typed form of a builder's ``weights`` argument:
    ``ResNet50Custom(weights=get_weights_spec("resnet50.keras_in1k"))``.

    Attributes:
        name: "<arch>.<tag>", e.g. "resnet50.keras_in1k" or "resnet18.tv_in1k".
        arch: registry name of the network the weights fit.
        source: "keras.applications" (the ``.h5`` files keras.applications downloads, ported
            into our layers) or "timm" (safetensors files on the Hugging Face Hub, converted).
        files: the :class:`WeightsFileSpec` files, with or without the classifier.
        input_size: the training / evaluation input side, the resolution of ``top1``/``top5``.
        preprocessing: the pixel preprocessing mode the weights were trained with, one of
            :data:`PREPROCESSING_MODES` ("caffe": BGR minus the ImageNet mean; "torch": x / 255
            minus the ImageNet mean, over its std; "tf": x / 127.5 - 1).
        license: the weights' license.
        top1, top5: published ImageNet-1k validation accuracy (percent), None if unpublished.
        crop_pct: center-crop fraction of the published evaluation, None if unpublished.
        interpolation: resize interpolation of the published evaluation, None if unpublished.
        build_args: builder arguments the weights need (e.g. ``{"keras_layout": False}``).
        twin: keras.applications class whose files these are (source "keras.applications").
        hf_repo: Hugging Face Hub repository (source "timm"), e.g. "timm/resnet18.tv_in1k".
        origin: who trained them.
        aux: the file holds an auxiliary classifier too (timm's Inception-v3 ``AuxLogits``).
        description: one line.
    """

    name: str
    arch: str
    source: str
    files: tuple
    input_size: int
    preprocessing: str
    license: str
    top1: float | None = None
    top5: float | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    build_args: Mapping[str, object] = dataclasses.field(default_factory=dict)
    twin: str | None = None
    hf_repo: str | None = None
    origin: str = ""
    aux: bool = False
    description: str = ""

    def __post_init__(self):
        if self.preprocessing not in PREPROCESSING_MODES:
            raise ValueError(f"{self.name}: `preprocessing` must be one of {list(PREPROCESSING_MODES)}")
        if "." not in self.name:
            raise ValueError(f"Weights names are '<arch>.<tag>'. Received: name={self.name!r}")
        object.__setattr__(self, "build_args", dict(self.build_args))
        object.__setattr__(self, "files", tuple(self.files))

    @property
    def tag(self):
        """The part after the network name, e.g. "keras_in1k"."""
        return self.name.split(".", 1)[1]

    def file(self, include_top):
        """The :class:`WeightsFileSpec` serving ``include_top`` (a shared file if there is one)."""
        for f in self.files:
            if f.include_top is None or f.include_top == bool(include_top):
                return f
        raise ValueError(f"{self.name} has no file for include_top={include_top}")


# --------------------------------------------------------------------------------------------
# The zoo. Parameter counts are those of the default build (tests/test_registry_contract.py
# builds every entry and compares).

# Architecture tables (He et al. 2016, table 1; Simonyan & Zisserman 2015, table 1), read by the
# builders and by the weight converters.

#: ResNet depth -> (block kind, blocks per stage conv2..conv5).
RESNET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
#: ResNet stage widths (the 3x3 convs; a bottleneck's output is 4x).
RESNET_WIDTHS = (64, 128, 256, 512)
#: VGG conv widths per block.
VGG_WIDTHS = (64, 128, 256, 512, 512)
#: Convs per VGG block of the paper's configurations A (11), B (13), D (16), E (19).
VGG_DEPTHS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
#: VGG's hidden fully connected layers.
VGG_FC = (4096, 4096)


def _resnet_stages(depth):
    blocks = RESNET_DEPTHS[depth][1]
    return {"stem": "conv1_relu", **{f"conv{s + 2}": f"conv{s + 2}_block{n}" for s, n in enumerate(blocks)}}


_HE2016 = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016, table 1"
_SZEGEDY2015 = "Szegedy et al., Rethinking the Inception Architecture for Computer Vision, CVPR 2016"

_ZOO = (
    ModelSpec(
        name="course_convnet", family="course", builder_path="keras_cnn.models.course:CourseConvNet",
        default_size=39, min_size=15, channels=3, preprocessing="unit",
        stages={"conv1": "conv1", "conv2": "conv2", "conv3": "conv3"},
        num_params=44_950, trainable_params=44_950,
        paper="Ng, Convolutional Neural Networks (deeplearning.ai), week 1: the example ConvNet",
        description="The lecture's small ConvNet: 39x39x3 -> 37x37x10 -> 17x17x20 -> 7x7x40 (1960) -> softmax.",
    ),
    ModelSpec(
        name="lenet5", family="lenet", builder_path="keras_cnn.models.lenet:LeNet5",
        default_size=32, min_size=16, channels=1, preprocessing="unit",
        stages={"conv1": "conv1", "pool1": "pool1", "conv2": "conv2", "pool2": "pool2"},
        num_params=61_706, trainable_params=61_706,
        paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998, section II.B",
        description="LeNet-5: 32x32x1, two conv + average-pool stages, FC 120-84, tanh.",
    ),
    ModelSpec(
        name="alexnet", family="alexnet", builder_path="keras_cnn.models.alexnet:AlexNet",
        default_size=227, min_size=67, preprocessing="caffe",
        stages={"conv1": "conv1", "pool1": "pool1", "conv2": "conv2", "pool2": "pool2",
                "conv3": "conv3", "conv4": "conv4", "conv5": "conv5", "pool5": "pool5"},
        num_params=62_378_344, trainable_params=62_378_344,
        paper="Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks, NIPS 2012, section 3.5",
        description="AlexNet, single stream, 227x227, ReLU, dropout; local response normalisation off (lrn=True adds it).",
    ),
    ModelSpec(
        name="vgg16", family="vgg", builder_path="keras_cnn.models.vgg:VGG16Custom",
        default_size=224, min_size=32, preprocessing="caffe",
        stages={f"block{b}": f"block{b}_pool" for b in range(1, 6)},
        num_params=138_357_544, trainable_params=138_357_544, twin="VGG16",
        paper="Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015, table 1 (D)",
        description="VGG-16, keras.applications twin.",
    ),
    ModelSpec(
        name="vgg19", family="vgg", builder_path="keras_cnn.models.vgg:VGG19Custom",
        default_size=224, min_size=32, preprocessing="caffe",
        stages={f"block{b}": f"block{b}_pool" for b in range(1, 6)},
        num_params=143_667_240, trainable_params=143_667_240, twin="VGG19",
        paper="Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015, table 1 (E)",
        description="VGG-19, keras.applications twin.",
    ),
    ModelSpec(
        name="plain34", family="plain", builder_path="keras_cnn.models.resnet:Plain34",
        default_size=224, min_size=32, preprocessing="torch", stages=_resnet_stages(34),
        num_params=21_639_080, trainable_params=21_623_848,
        paper=_HE2016 + " and figure 3 (34-layer plain)",
        description="Plain-34: ResNet-34 without shortcuts, the degradation baseline.",
    ),
    ModelSpec(
        name="resnet18", family="resnet", builder_path="keras_cnn.models.resnet:ResNet18",
        default_size=224, min_size=32, preprocessing="torch", stages=_resnet_stages(18),
        num_params=11_699_112, trainable_params=11_689_512, paper=_HE2016,
        description="ResNet-18, basic blocks, torchvision layout.",
    ),
    ModelSpec(
        name="resnet34", family="resnet", builder_path="keras_cnn.models.resnet:ResNet34",
        default_size=224, min_size=32, preprocessing="torch", stages=_resnet_stages(34),
        num_params=21_814_696, trainable_params=21_797_672, paper=_HE2016,
        description="ResNet-34, basic blocks, torchvision layout.",
    ),
    ModelSpec(
        name="resnet50", family="resnet", builder_path="keras_cnn.models.resnet:ResNet50Custom",
        default_size=224, min_size=32, preprocessing="caffe", stages=_resnet_stages(50),
        num_params=25_636_712, trainable_params=25_583_592, twin="ResNet50", paper=_HE2016,
        description="ResNet-50, keras.applications twin (keras_layout=False: torchvision's v1.5).",
    ),
    ModelSpec(
        name="resnet101", family="resnet", builder_path="keras_cnn.models.resnet:ResNet101Custom",
        default_size=224, min_size=32, preprocessing="caffe", stages=_resnet_stages(101),
        num_params=44_707_176, trainable_params=44_601_832, twin="ResNet101", paper=_HE2016,
        description="ResNet-101, keras.applications twin.",
    ),
    ModelSpec(
        name="resnet152", family="resnet", builder_path="keras_cnn.models.resnet:ResNet152Custom",
        default_size=224, min_size=32, preprocessing="caffe", stages=_resnet_stages(152),
        num_params=60_419_944, trainable_params=60_268_520, twin="ResNet152", paper=_HE2016,
        description="ResNet-152, keras.applications twin.",
    ),
    ModelSpec(
        name="googlenet", family="googlenet", builder_path="keras_cnn.models.googlenet:GoogLeNet",
        default_size=224, min_size=32, preprocessing="tf", aux_heads=2,
        stages={"conv1": "conv1", "conv2": "conv2", "inception3": "inception_3b",
                "inception4": "inception_4e", "inception5": "inception_5b"},
        num_params=6_998_552, trainable_params=6_998_552,
        paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015, table 1",
        description="GoogLeNet / Inception-v1: 9 Inception modules, 2 auxiliary heads.",
    ),
    ModelSpec(
        name="inception_v2", family="inception_v2", builder_path="keras_cnn.models.inception_v2:InceptionV2",
        default_size=299, min_size=75, preprocessing="tf", aux_heads=1,
        stages={"stem1": "stem_conv3", "stem2": "stem_conv4", "inception_a": "inception_a3",
                "inception_b": "inception_b5", "inception_c": "inception_c2"},
        num_params=25_973_512, trainable_params=25_934_984,
        paper=_SZEGEDY2015 + ", table 1 (Inception-v2)",
        description="Inception-v2: factorised modules (figures 5, 6, 7) with BatchNormalization.",
    ),
    ModelSpec(
        name="inception_v3", family="inception_v3", builder_path="keras_cnn.models.inception_v3:InceptionV3Custom",
        default_size=299, min_size=75, preprocessing="tf", aux_heads=1,
        stages={"stem1": "stem_conv3", "stem2": "stem_conv5", "mixed2": "mixed2",
                "mixed7": "mixed7", "mixed10": "mixed10"},
        num_params=23_851_784, trainable_params=23_817_352, twin="InceptionV3",
        paper=_SZEGEDY2015 + ", section 6 (Inception-v3)",
        description="Inception-v3, keras.applications.InceptionV3 layer for layer.",
    ),
)

#: name -> ModelSpec, in listing order.
MODEL_SPECS: dict[str, ModelSpec] = {}

# --------------------------------------------------------------------------------------------
# Pretrained weights. keras.applications' files: names, URLs and md5 hashes exactly as
# keras.applications passes them to `keras.utils.get_file` (tests/test_weights.py compares them
# with the installed Keras, so an upgrade that changes one fails loudly). Accuracy: the
# keras.applications documentation's table (single crop, ImageNet-1k validation).

_KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications"
_KERAS_LICENSES = {
    "vgg": "CC BY 4.0 (ported by Keras from the weights the Oxford VGG group released)",
    "resnet": "MIT (ported by Keras from the Caffe models Kaiming He released)",
    "inception_v3": "Apache-2.0 (trained by the Keras team)",
}


def _keras_weights(arch, twin, folder, stem, hashes, *, input_size, preprocessing, top1, top5, license):
    files = tuple(
        WeightsFileSpec(fname=f"{stem}{suffix}.h5", url=f"{_KERAS_BASE}/{folder}/{stem}{suffix}.h5",
                        file_hash=h, include_top=top)
        for top, suffix, h in ((True, "", hashes[0]), (False, "_notop", hashes[1]))
    )
    return WeightsSpec(
        name=f"{arch}.keras_in1k", arch=arch, source="keras.applications", files=files,
        input_size=input_size, preprocessing=preprocessing, top1=top1, top5=top5, license=license,
        twin=twin, origin="Keras (keras.applications)",
        description=f"keras.applications.{twin}(weights='imagenet'), ported layer for layer.",
    )


_KERAS_WEIGHTS = (
    _keras_weights("vgg16", "VGG16", "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels",
                   ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
                   input_size=224, preprocessing="caffe", top1=71.3, top5=90.1, license=_KERAS_LICENSES["vgg"]),
    _keras_weights("vgg19", "VGG19", "vgg19", "vgg19_weights_tf_dim_ordering_tf_kernels",
                   ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
                   input_size=224, preprocessing="caffe", top1=71.3, top5=90.0, license=_KERAS_LICENSES["vgg"]),
    _keras_weights("resnet50", "ResNet50", "resnet", "resnet50_weights_tf_dim_ordering_tf_kernels",
                   ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
                   input_size=224, preprocessing="caffe", top1=74.9, top5=92.1, license=_KERAS_LICENSES["resnet"]),
    _keras_weights("resnet101", "ResNet101", "resnet", "resnet101_weights_tf_dim_ordering_tf_kernels",
                   ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
                   input_size=224, preprocessing="caffe", top1=76.4, top5=92.8, license=_KERAS_LICENSES["resnet"]),
    _keras_weights("resnet152", "ResNet152", "resnet", "resnet152_weights_tf_dim_ordering_tf_kernels",
                   ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
                   input_size=224, preprocessing="caffe", top1=76.6, top5=93.1, license=_KERAS_LICENSES["resnet"]),
    _keras_weights("inception_v3", "InceptionV3", "inception_v3", "inception_v3_weights_tf_dim_ordering_tf_kernels",
                   ("9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63"),
                   input_size=299, preprocessing="tf", top1=77.9, top5=93.7, license=_KERAS_LICENSES["inception_v3"]),
)

# timm's files on the Hugging Face Hub (`keras_cnn.weights.timm` converts them). For each network the
# first record is what weights="imagenet" means for a build without a keras.applications twin
# (torchvision's weights). Accuracy: timm's results/results-imagenet.csv (top1, top5) at the weights'
# input_size (timm also lists the a1 weights at 288, tv2 at 224); crop, interpolation, license: the
# weights' pretrained_cfg in timm/models/resnet.py, vgg.py and inception_v3.py. ResNet and VGG weights
# use timm's IMAGENET_DEFAULT_MEAN / _STD, i.e. our "torch" preprocessing.

_HF_HUB = "https://huggingface.co"
#: The file name of every timm weights repository.
TIMM_FILENAME = "model.safetensors"


def _timm_weights(name, *, top1, top5, input_size=224, crop_pct=0.875, interpolation="bilinear",
                  license="BSD-3-Clause", origin="torchvision", build_args=None, preprocessing="torch", aux=False):
    repo = f"timm/{name}"
    return WeightsSpec(
        name=name, arch=name.split(".", 1)[0], source="timm",
        files=(WeightsFileSpec(TIMM_FILENAME, f"{_HF_HUB}/{repo}/resolve/main/{TIMM_FILENAME}", include_top=None,
                               hash_algorithm="sha256"),),
        input_size=input_size, preprocessing=preprocessing, license=license, top1=top1, top5=top5,
        crop_pct=crop_pct, interpolation=interpolation, build_args=dict(build_args or {}), hf_repo=repo,
        origin=origin, aux=aux,
        description=f"{origin} ImageNet-1k weights via timm ({interpolation} resize, crop {crop_pct}"
                    + (", auxiliary head included)" if aux else ")"),
    )


_TV = {"keras_layout": False}  # torchvision's layout of a network we build keras' way by default
_RSB = dict(crop_pct=0.95, interpolation="bicubic", license="Apache-2.0", origin="timm (Wightman et al., 2021)")
_GLUON = dict(interpolation="bicubic", license="Apache-2.0", origin="GluonCV (ResNet v1b)")
# timm's inception_v3 cfg: 299 px, crop 0.875, bicubic, IMAGENET_INCEPTION_MEAN / _STD (0.5, i.e. our
# "tf" mode) but for gluon's weights (ImageNet mean / std, "torch"); license as timm states it.
_IV3 = dict(input_size=299, interpolation="bicubic", license="Apache-2.0", build_args=_TV, preprocessing="tf")

_TIMM_WEIGHTS = (
    _timm_weights("resnet18.tv_in1k", top1=69.752, top5=89.082),
    _timm_weights("resnet18.a1_in1k", top1=71.504, top5=90.086, **_RSB),
    _timm_weights("resnet18.gluon_in1k", top1=70.844, top5=89.750, **_GLUON),
    _timm_weights("resnet34.tv_in1k", top1=73.298, top5=91.422),
    _timm_weights("resnet34.a1_in1k", top1=76.420, top5=92.896, **_RSB),
    _timm_weights("resnet34.gluon_in1k", top1=74.574, top5=91.988, **_GLUON),
    _timm_weights("resnet50.tv_in1k", top1=76.156, top5=92.866, build_args=_TV),
    _timm_weights("resnet50.tv2_in1k", top1=79.434, top5=94.640, input_size=176, build_args=_TV),
    _timm_weights("resnet50.a1_in1k", top1=80.382, top5=94.598, build_args=_TV, **_RSB),
    _timm_weights("resnet50.gluon_in1k", top1=77.580, top5=93.704, build_args=_TV, **_GLUON),
    _timm_weights("resnet101.tv_in1k", top1=77.404, top5=93.552, build_args=_TV),
    _timm_weights("resnet101.tv2_in1k", top1=79.908, top5=94.606, input_size=176, build_args=_TV),
    _timm_weights("resnet101.a1h_in1k", top1=81.950, top5=95.760, build_args=_TV, **_RSB),
    _timm_weights("resnet101.gluon_in1k", top1=79.306, top5=94.538, build_args=_TV, **_GLUON),
    _timm_weights("resnet152.tv_in1k", top1=78.330, top5=94.046, build_args=_TV),
    _timm_weights("resnet152.tv2_in1k", top1=80.222, top5=94.650, input_size=176, build_args=_TV),
    _timm_weights("resnet152.a1h_in1k", top1=82.818, top5=96.124, build_args=_TV, **_RSB),
    _timm_weights("resnet152.gluon_in1k", top1=79.712, top5=94.720, build_args=_TV, **_GLUON),
    _timm_weights("vgg16.tv_in1k", top1=71.594, top5=90.398),
    _timm_weights("vgg19.tv_in1k", top1=72.400, top5=90.878),
    _timm_weights("inception_v3.tv_in1k", top1=77.472, top5=93.468, aux=True,
                  origin="torchvision (ported from TensorFlow)", **_IV3),
    _timm_weights("inception_v3.tf_in1k", top1=77.866, top5=93.644, origin="TF-slim (Szegedy et al., 2016)", **_IV3),
    _timm_weights("inception_v3.tf_adv_in1k", top1=77.598, top5=93.726,
                  origin="TF, adversarially trained (Kurakin et al., 2017)", **_IV3),
    _timm_weights("inception_v3.gluon_in1k", top1=78.806, top5=94.372, origin="GluonCV",
                  **dict(_IV3, preprocessing="torch")),
)

#: name -> WeightsSpec; for each network the first one listed is its default ("imagenet").
WEIGHTS_SPECS: dict[str, WeightsSpec] = {}


def add_model_spec(spec):
    """Add ``spec`` to the zoo; ValueError on a duplicate name."""
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"`spec` must be a ModelSpec. Received: spec={spec!r}")
    if spec.name in MODEL_SPECS:
        raise ValueError(f"A model named {spec.name!r} is already registered; names must be unique.")
    MODEL_SPECS[spec.name] = spec
    return spec


def add_weights_spec(spec):
    """Add a :class:`WeightsSpec`; ValueError on a duplicate name or an unknown network."""
    if not isinstance(spec, WeightsSpec):
        raise ValueError(f"`spec` must be a WeightsSpec. Received: spec={spec!r}")
    if spec.name in WEIGHTS_SPECS:
        raise ValueError(f"Weights named {spec.name!r} are already registered; names must be unique.")
    if spec.arch not in MODEL_SPECS:
        raise ValueError(f"{spec.name}: unknown network {spec.arch!r}. Known: {list(MODEL_SPECS)}")
    if not spec.name.startswith(spec.arch + "."):
        raise ValueError(f"Weights names are '<arch>.<tag>'. Received: {spec.name!r} for arch {spec.arch!r}")
    WEIGHTS_SPECS[spec.name] = spec
    return spec


for _spec in _ZOO:
    add_model_spec(_spec)
for _spec in _KERAS_WEIGHTS + _TIMM_WEIGHTS:
    add_weights_spec(_spec)
del _spec


def list_models(pattern=None, pretrained=False, family=None):
    """Registry names, in listing order.

    Args:
        pattern: an ``fnmatch`` pattern ("resnet*"), or None for all.
        pretrained: only networks with pretrained weights.
        family: only this family ("resnet", "vgg", ...).

    Example:
        >>> list_models("resnet*", pretrained=True)
        ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152']
    """
    names = list(MODEL_SPECS)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if family is not None:
        names = [n for n in names if MODEL_SPECS[n].family == family]
    if pretrained:
        with_weights = {w.arch for w in WEIGHTS_SPECS.values()}
        names = [n for n in names if n in with_weights]
    return names


def get_model_spec(name):
    """The :class:`ModelSpec` of ``name``; ValueError listing the known names otherwise."""
    if isinstance(name, ModelSpec):
        return name
    if name not in MODEL_SPECS:
        raise ValueError(f"Unknown model `name`. Received: name={name!r}. Known models: {list(MODEL_SPECS)}")
    return MODEL_SPECS[name]


def list_weights(arch=None):
    """Names of the pretrained weights (of one network), default of each network first."""
    return [n for n, w in WEIGHTS_SPECS.items() if arch is None or w.arch == arch]


#: Suffixes that make a ``weights`` string a file path rather than a weights name.
WEIGHTS_FILE_SUFFIXES = (".h5", ".weights.h5", ".keras", ".safetensors")


class WeightsFileNotFoundError(FileNotFoundError, ValueError):
    """``weights`` names a file that does not exist.

    A FileNotFoundError, and a ValueError as keras.applications raises for a bad ``weights``.
    """


def is_weights_name(text):
    """True if ``text`` is a registered weights name: "imagenet", a record name
    ("resnet50.keras_in1k"), a record's tag ("tv_in1k") or a network with weights ("resnet50")."""
    if not isinstance(text, str):
        return False
    return (
        text == "imagenet"
        or text in WEIGHTS_SPECS
        or any(text in (w.tag, w.arch) for w in WEIGHTS_SPECS.values())
    )


def weights_name(weights):
    """The weights name a ``weights`` argument spells, or None when it is a file path (or None).

    A name is a name: a registered name (:func:`is_weights_name`: "imagenet", a record name, a
    tag) always means the record, whatever files the working directory holds; timm's spelling
    "timm:<name>" is the name without its prefix; a :class:`WeightsSpec` is its name. A string is
    a file path only when it is not a registered name and it contains a path separator, ends in a
    weights suffix (:data:`WEIGHTS_FILE_SUFFIXES`) or names an existing file. Any other string is
    an (unknown) name, refused by :func:`get_weights_spec` listing what exists. A
    ``pathlib.Path`` (any ``os.PathLike``) is always a path.

    Example:
        >>> weights_name("imagenet"), weights_name("timm:resnet18.tv_in1k"), weights_name("w/x.h5")
        ('imagenet', 'resnet18.tv_in1k', None)
    """
    if isinstance(weights, WeightsSpec):
        return weights.name
    if not isinstance(weights, str):
        return None
    if weights.startswith("timm:"):
        return weights[len("timm:"):]
    if is_weights_name(weights):
        return weights
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    if any(sep in weights for sep in separators) or weights.endswith(WEIGHTS_FILE_SUFFIXES):
        return None
    return None if os.path.isfile(weights) else weights


def get_weights_spec(name, arch=None):
    """The :class:`WeightsSpec` named ``name``.

    Args:
        name: a full name ("resnet50.keras_in1k", or timm's spelling "timm:resnet18.tv_in1k"), a
            tag of ``arch`` ("tv_in1k"), "imagenet" (``arch``'s default weights), a registry name
            (its default weights), or a :class:`WeightsSpec` (returned as it is).
        arch: the network, to resolve a tag or "imagenet", and checked against the record's.

    Raises:
        ValueError: no such weights, or weights of another network; the message lists what exists.
    """
    if isinstance(name, WeightsSpec):
        if arch is not None and name.arch != arch:
            raise ValueError(
                f"The weights {name.name!r} are for {name.arch!r}, not {arch!r}. Received: weights={name.name!r}"
            )
        return name
    if isinstance(name, str) and name.startswith("timm:"):
        name = name[len("timm:"):]
    if name in WEIGHTS_SPECS:
        spec = WEIGHTS_SPECS[name]
        if arch is not None and spec.arch != arch:
            raise ValueError(f"The weights {name!r} are for {spec.arch!r}, not {arch!r}. Received: weights={name!r}")
        return spec
    target = arch if name == "imagenet" else (name if name in MODEL_SPECS else arch)
    if target is not None:
        own = [w for w in WEIGHTS_SPECS.values() if w.arch == target]
        if name in ("imagenet", target) and own:
            return own[0]
        for w in own:
            if w.tag == name:
                return w
    known = list_weights(arch) if arch else list(WEIGHTS_SPECS)
    raise ValueError(
        f"Unknown pretrained weights. Received: weights={name!r}"
        + (f" for {arch!r}" if arch else "")
        + f". Known: {known or 'none for this network'}"
    )


def weights_build_args(arch, weights):
    """The builder arguments the pretrained weights ``weights`` need on network ``arch``.

    The one rule for every path that builds a registry network from a ``weights`` argument
    (`keras_cnn.transfer.load_base`, ``keras-cnn transfer --weights``): a weights name is looked up
    and its record's :attr:`WeightsSpec.build_args` are returned, e.g. ``{"keras_layout": False}``
    for timm's torchvision-layout ResNet-50 weights. None, file paths and "imagenet" need nothing:
    "imagenet" means the default weights of the layout being built (keras.applications' file for
    the keras-layout twin), so it follows the build rather than steering it.

    Args:
        arch: registry name of the network; a name outside the registry needs nothing here (its
            builder refuses weights names itself).
        weights: the ``weights`` argument (None, "imagenet", a weights name or "timm:<name>", a
            `WeightsSpec`, a path).

    Returns:
        A new dict, empty when the weights need no builder argument.

    Raises:
        ValueError: a weights name that does not exist for ``arch`` (the message lists what does).
    """
    name = weights_name(weights)
    if name is None or name == "imagenet" or arch not in MODEL_SPECS:
        return {}
    return dict(get_weights_spec(weights if isinstance(weights, WeightsSpec) else name, arch=arch).build_args)


def source_build_args(arch, source):
    """The builder arguments every weights record of ``source`` for ``arch`` needs.

    The layout of that source's files: e.g. ``source_build_args("resnet50", "timm")`` is
    ``{"keras_layout": False}``, the argument a timm safetensors *file* of ResNet-50 needs (a file
    path carries no record; see :func:`weights_build_args` for names). Empty when the records need
    none, disagree, or do not exist.
    """
    records = [w for w in WEIGHTS_SPECS.values() if w.arch == arch and w.source == source]
    if not records or any(dict(w.build_args) != dict(records[0].build_args) for w in records):
        return {}
    return dict(records[0].build_args)


def merge_weights_build_args(arch, weights, model_kwargs=None):
    """``model_kwargs`` completed with the builder arguments ``weights`` need (:func:`weights_build_args`).

    Args:
        arch: registry name of the network to build.
        weights: its ``weights`` argument.
        model_kwargs: the caller's own builder arguments (a dict, or None).

    Returns:
        ``(kwargs, notice)``: the builder arguments to use (a new dict) and, when the weights added
        some the caller did not set, one line saying so (e.g. "resnet50: building with
        keras_layout=False, the layout of the weights 'resnet50.tv_in1k'"), else None.

    Raises:
        ValueError: ``model_kwargs`` sets an argument to another value than the weights need; the
            message names both and the weights of ``arch`` that fit ``model_kwargs``.

    Example:
        >>> merge_weights_build_args("resnet50", "timm:resnet50.tv_in1k")
        ({'keras_layout': False}, "resnet50: building with keras_layout=False, the layout of the weights 'resnet50.tv_in1k'")
    """
    kwargs = dict(model_kwargs or {})
    needed = weights_build_args(arch, weights)
    if not needed:
        return kwargs, None
    record = get_weights_spec(weights if isinstance(weights, WeightsSpec) else weights_name(weights), arch=arch)
    conflicts = {k: v for k, v in needed.items() if k in kwargs and kwargs[k] != v}
    if conflicts:
        fitting = [
            w for w in list_weights(arch)
            if all(WEIGHTS_SPECS[w].build_args.get(k, kwargs[k]) == kwargs[k] for k in conflicts)
        ]
        said = ", ".join(f"{k}={kwargs[k]!r}" for k in conflicts)
        need = ", ".join(f"{k}={v!r}" for k, v in conflicts.items())
        raise ValueError(
            f"The weights {record.name!r} need the builder argument(s) {need} (the layout they were "
            f"trained in); `model_kwargs` sets {said}. Drop it, or choose weights of {arch} that fit "
            f"{said}: {fitting or 'none'}. Received: weights={weights!r}, model_kwargs={model_kwargs!r}"
        )
    added = {k: v for k, v in needed.items() if k not in kwargs}
    kwargs.update(added)
    if not added:
        return kwargs, None
    args = ", ".join(f"{k}={v!r}" for k, v in added.items())
    return kwargs, f"{arch}: building with {args}, the layout of the weights {record.name!r}"


# --------------------------------------------------------------------------------------------
# The README's tables are generated from the records (tests/test_readme_tables.py checks them).


def _builder_name(spec):
    return spec.builder_path.rpartition(":")[2]


def zoo_markdown():
    """The README's model table, from :data:`MODEL_SPECS`."""
    lines = [
        "| name | function | params (trainable) | input (min) | preprocessing | twin | aux | reference |",
        "|---|---|---:|---|---|---|---:|---|",
    ]
    for spec in MODEL_SPECS.values():
        size = f"{spec.default_size}x{spec.default_size}x{spec.channels} ({spec.min_size})"
        params = f"{spec.num_params:,}" if spec.num_params else "?"
        if spec.trainable_params and spec.trainable_params != spec.num_params:
            params += f" ({spec.trainable_params:,})"
        lines.append(
            f"| `{spec.name}` | `{_builder_name(spec)}` | {params} | {size} | {spec.preprocessing} | "
            f"{spec.twin or '-'} | {spec.aux_heads} | {spec.paper} |"
        )
    return "\n".join(lines)


def weights_markdown():
    """The README's pretrained-weights table, from :data:`WEIGHTS_SPECS`."""
    lines = [
        "| weights | network | source | input | crop, resize | preprocessing | top-1 / top-5 (%) | license |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for w in WEIGHTS_SPECS.values():
        acc = "-" if w.top1 is None else f"{w.top1:.1f}" + ("" if w.top5 is None else f" / {w.top5:.1f}")
        args = "".join(f", {k}={v!r}" for k, v in w.build_args.items())
        crop = "-" if w.crop_pct is None else f"{w.crop_pct}, {w.interpolation}"
        lines.append(
            f"| `{w.name}` | `{w.arch}`{args} | {w.source} | {w.input_size} | {crop} | {w.preprocessing} | {acc} "
            f"| {w.license} |"
        )
    return "\n".join(lines)
