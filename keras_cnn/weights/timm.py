"""Pretrained weights from timm's ``safetensors`` files: ResNet-18..152 and Inception-v3 (torchvision layout), VGG-16/19.

keras.applications never shipped ImageNet weights for ResNet-18/34, nor torchvision's ResNet-50/101/152
("v1.5": stride on the 3x3, no conv bias), nor an Inception-v3 with its auxiliary head. timm
publishes torchvision's weights, and others (its own, GluonCV's, TF-slim's), on the Hugging Face
Hub as ``timm/<arch>.<tag>/model.safetensors`` with plain PyTorch parameter names
(``conv1.weight``, ``layer1.0.bn1.running_mean``, ``Mixed_5b.branch1x1.conv.weight``, ...).
Their records are `keras_cnn.models.WeightsSpec` entries of source "timm" (Hub repository, file,
network, build arguments, input size, crop, interpolation, preprocessing, published accuracy,
license: `keras_cnn.models.specs`). This module:

* fetches a file with ``huggingface_hub`` (its cache and its offline mode; without a network the
  clear error comes at once, naming the repository, the file and where to put it):
  :func:`get_timm_file`;
* reads it with ``safetensors`` (numpy, no torch), recognises which timm network it holds
  (:func:`describe_timm_file`), maps every tensor onto our layers with names generated from the
  architecture tables (:func:`timm_key_map`), converts it (conv OIHW -> HWIO; BN weight, bias,
  running mean and variance -> gamma, beta, moving mean and variance; linear (out, in) ->
  (in, out); VGG's 7x7 "fc1" convolution -> our Dense over the NHWC-flattened 7x7x512 map),
  checks every shape and the BN epsilons, and only then assigns anything:
  :func:`load_timm_weights`.

So timm's weights are accepted wherever a builder takes ``weights``:
``weights="timm:resnet18.tv_in1k"`` (or "resnet18.tv_in1k", or the tag "tv_in1k"),
``weights="/path/model.safetensors"`` and, for a build keras.applications has no weights for
(ResNet-18/34, torchvision-layout ResNet-50/101/152 and Inception-v3), ``weights="imagenet"``: the first
timm record of the network (torchvision's).

Inception-v3: timm's (torchvision's) network has BN scales (gamma) and average pools that count
the zero padding, so its weights go into ``InceptionV3Custom(keras_layout=False)``; with
``aux_logits=True`` the auxiliary head of ``inception_v3.tv_in1k`` is loaded too (timm's other
Inception-v3 files have none).
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from keras_cnn.layers.conv import factor_kernels
from keras_cnn.layers.inception import normalize_branches
from keras_cnn.models.inception_v3 import INCEPTION_V3_STEM, inception_v3_blocks
from keras_cnn.models.specs import (
    RESNET_DEPTHS,
    RESNET_WIDTHS,
    VGG_DEPTHS,
    VGG_FC,
    VGG_WIDTHS,
    WEIGHTS_SPECS,
    WeightsSpec,
    source_build_args,
)
from keras_cnn.weights.files import is_safetensors_file
from keras_cnn.weights.port import weighted_leaves

__all__ = [
    "TIMM_NETWORKS",
    "TimmWeightsUnavailableError",
    "describe_timm_file",
    "expected_timm_shapes",
    "get_timm_file",
    "is_timm_source",
    "load_timm_record",
    "load_timm_weights",
    "resolve_timm_source",
    "timm_key_map",
    "timm_record",
    "timm_records",
]

TIMM_PREFIX = "timm:"
#: Seconds huggingface_hub may wait for the Hub's answer before giving up (its ``etag_timeout``).
HUB_TIMEOUT = 10.0


class TimmWeightsUnavailableError(FileNotFoundError):
    """A timm weights file is neither in the Hugging Face cache nor downloadable now.

    Attributes:
        record: the `keras_cnn.models.WeightsSpec` needed.
    """

    def __init__(self, message, record=None):
        super().__init__(message)
        self.record = record


def timm_records(network=None):
    """``{name: WeightsSpec}`` of the timm weights (of one registry network), default first."""
    return {n: w for n, w in WEIGHTS_SPECS.items() if w.source == "timm" and network in (None, w.arch)}


def timm_record(tag):
    """The `WeightsSpec` of timm weights ``tag`` ("resnet18.tv_in1k", "timm:resnet18.tv_in1k" or a record)."""
    if isinstance(tag, WeightsSpec):
        if tag.source != "timm":
            raise ValueError(f"The weights {tag.name!r} are {tag.source}'s, not timm's. Received: weights={tag.name!r}")
        return tag
    if isinstance(tag, str) and tag.startswith(TIMM_PREFIX):
        tag = tag[len(TIMM_PREFIX):]
    records = timm_records()
    if tag not in records:
        raise ValueError(
            f"Unknown timm weights tag. Received: weights='timm:{tag}'. Supported: "
            + ", ".join(f"'timm:{t}'" for t in records)
        )
    return records[tag]


def is_timm_source(weights):
    """True for ``"timm:<tag>"`` (known tag or not: :func:`timm_record` checks it) or a timm record."""
    if isinstance(weights, WeightsSpec):
        return weights.source == "timm"
    return isinstance(weights, str) and weights.startswith(TIMM_PREFIX)


# --------------------------------------------------------------------------------------------
# Fetching.


def _offline():
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(constants.HF_HUB_OFFLINE) or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def get_timm_file(tag, cache_dir=None, *, local_files_only=None, timeout=None):
    """Local path of the safetensors file of timm weights ``tag``, downloading it if needed.

    Uses ``huggingface_hub`` and so its cache (``$HF_HUB_CACHE``, default
    ``~/.cache/huggingface/hub``) and its offline mode. In order:

    1. the cache, without any network access (a cached file is used offline);
    2. with ``HF_HUB_OFFLINE=1`` (read at each call) or ``local_files_only=True``: the error;
    3. one request to the Hub without retries (``get_hf_file_metadata(retry_on_errors=False)``,
       waiting at most ``timeout``): without a network the error comes at once, not after
       huggingface_hub's half a minute of retries with backoff;
    4. the download (``hf_hub_download``, whose retries then cover a flaky connection).

    Args:
        tag: "resnet18.tv_in1k", "timm:resnet18.tv_in1k" or a timm `WeightsSpec`.
        cache_dir: Hugging Face cache folder; default huggingface_hub's.
        local_files_only: only the cache; default: True when ``HF_HUB_OFFLINE`` is set.
        timeout: seconds to wait for the Hub; default :data:`HUB_TIMEOUT`.

    Returns:
        The path of ``model.safetensors`` in the cache.

    Raises:
        ValueError: unknown tag.
        TimmWeightsUnavailableError: not cached and not downloadable now; the message names the
            repository, the file, its URL and where to put it.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    record = timm_record(tag)
    repo, fname = record.hf_repo, record.file(True).fname
    offline = _offline() if local_files_only is None else bool(local_files_only)
    seconds = HUB_TIMEOUT if timeout is None else float(timeout)
    try:
        return hf_hub_download(repo, fname, cache_dir=cache_dir, local_files_only=True)
    except FileNotFoundError as err:  # huggingface_hub's LocalEntryNotFoundError: not cached
        if offline:
            raise _unavailable(record, cache_dir, "offline mode (HF_HUB_OFFLINE / local_files_only): only the "
                                                  "cache was searched") from err
    try:
        get_hf_file_metadata(hf_hub_url(repo, fname), timeout=seconds, retry_on_errors=False)
        return hf_hub_download(repo, fname, cache_dir=cache_dir, etag_timeout=seconds)
    except Exception as err:  # huggingface_hub raises many kinds (connection, HTTP, OS) for one cause
        how = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
        raise _unavailable(record, cache_dir, how) from err


def _unavailable(record, cache_dir, how):
    from huggingface_hub import constants

    cache = os.fspath(cache_dir) if cache_dir is not None else constants.HF_HUB_CACHE
    f = record.file(True)
    return TimmWeightsUnavailableError(
        f"timm weights {record.name!r} are not in the Hugging Face cache {cache} and could not be "
        f"downloaded ({how}). Needed: file {f.fname!r} of the Hub repository {record.hf_repo!r} ({f.url}). "
        f"Where there is internet, run `hf download {record.hf_repo} {f.fname} --cache-dir {cache}` and "
        f"copy that cache folder here, or download the file and pass weights='/path/to/{f.fname}'.",
        record=record,
    )


# --------------------------------------------------------------------------------------------
# The key maps, generated from our architecture tables.


@dataclasses.dataclass(frozen=True)
class Param:
    """One timm module with weights and the leaf layer of ours that receives them.

    Attributes:
        prefix: timm's module name, e.g. "layer1.0.conv1" (tensors "<prefix>.weight", ...).
        leaf: name of our leaf layer, e.g. "conv2_block1_1_conv".
        kind: "conv", "bn", "linear" or "conv_as_dense" (a KxK conv applied to a KxK map,
            i.e. a Dense over the flattened map, VGG's fc1; 1x1 for fc2).
        head: part of the classifier (skipped with ``include_top=False``).
        aux: part of an auxiliary classifier (Inception-v3's ``AuxLogits``; loaded only into a
            model built with ``aux_logits=True``).
    """

    prefix: str
    leaf: str
    kind: str
    head: bool = False
    aux: bool = False


def _resnet_map(depth):
    kind, stages = RESNET_DEPTHS[depth]
    convs = 2 if kind == "basic" else 3
    params = [Param("conv1", "conv1_conv", "conv"), Param("bn1", "conv1_bn", "bn")]
    for s, blocks in enumerate(stages):
        for b in range(blocks):
            t, k = f"layer{s + 1}.{b}", f"conv{s + 2}_block{b + 1}"
            if b == 0 and (s > 0 or kind == "bottleneck"):  # projection where the shape changes
                params += [Param(f"{t}.downsample.0", f"{k}_0_conv", "conv"),
                           Param(f"{t}.downsample.1", f"{k}_0_bn", "bn")]
            for c in range(1, convs + 1):
                params += [Param(f"{t}.conv{c}", f"{k}_{c}_conv", "conv"), Param(f"{t}.bn{c}", f"{k}_{c}_bn", "bn")]
    params.append(Param("fc", "predictions", "linear", head=True))
    return params


def _vgg_map(depth):
    params, index = [], 0
    for b, convs in enumerate(VGG_DEPTHS[depth], start=1):
        for i in range(1, convs + 1):
            params.append(Param(f"features.{index}", f"block{b}_conv{i}_conv", "conv"))
            index += 2  # Conv2d, ReLU
        index += 1  # MaxPool2d
    params += [Param("pre_logits.fc1", "fc1", "conv_as_dense", head=True),
               Param("pre_logits.fc2", "fc2", "conv_as_dense", head=True),
               Param("head.fc", "predictions", "linear", head=True)]
    return params


# timm's (torchvision's) Inception-v3 module names, block by block, in the shape of our branch tables
# (`keras_cnn.models.inception_v3.inception_v3_blocks`): a string per conv step, a tuple per
# factorised step (one name per factor), None for a pool step. Pool branches of the grid reductions
# have no weights and are not listed.
_TIMM_INCEPTION_BRANCHES = {
    "A": [["branch1x1"], ["branch5x5_1", "branch5x5_2"], ["branch3x3dbl_1", ("branch3x3dbl_2", "branch3x3dbl_3")],
          [None, "branch_pool"]],
    "B": [["branch3x3"], ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]],
    "C": [["branch1x1"], ["branch7x7_1", ("branch7x7_2", "branch7x7_3")],
          ["branch7x7dbl_1", ("branch7x7dbl_2", "branch7x7dbl_3"), ("branch7x7dbl_4", "branch7x7dbl_5")],
          [None, "branch_pool"]],
    "D": [["branch3x3_1", "branch3x3_2"], ["branch7x7x3_1", ("branch7x7x3_2", "branch7x7x3_3"), "branch7x7x3_4"]],
    "E": [["branch1x1"], ["branch3x3_1", ("branch3x3_2a", "branch3x3_2b")],
          ["branch3x3dbl_1", "branch3x3dbl_2", ("branch3x3dbl_3a", "branch3x3dbl_3b")], [None, "branch_pool"]],
}
# timm block -> (our block, its kind in the table above).
_TIMM_INCEPTION_BLOCKS = (
    ("Mixed_5b", "mixed0", "A"), ("Mixed_5c", "mixed1", "A"), ("Mixed_5d", "mixed2", "A"),
    ("Mixed_6a", "mixed3", "B"),
    ("Mixed_6b", "mixed4", "C"), ("Mixed_6c", "mixed5", "C"), ("Mixed_6d", "mixed6", "C"), ("Mixed_6e", "mixed7", "C"),
    ("Mixed_7a", "mixed8", "D"), ("Mixed_7b", "mixed9", "E"), ("Mixed_7c", "mixed10", "E"),
)
_TIMM_INCEPTION_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
_AUX_PREFIX = "AuxLogits"


def _inception_v3_convs():
    """Every conv+BN module of timm's Inception-v3 as ``(timm prefix, our ConvBN name, O, I, kh, kw)``.

    Walks our architecture tables (stem rows, `inception_v3_blocks`, the auxiliary head) beside
    timm's names, tracking channels, so the names and the shapes come from one walk.
    """
    convs, cin = [], 3
    rows = [r for r in INCEPTION_V3_STEM if r != "pool"]
    for i, (prefix, (filters, k, _, _)) in enumerate(zip(_TIMM_INCEPTION_STEM, rows), start=1):
        convs.append((prefix, f"stem_conv{i}", filters, cin, k, k))
        cin = filters
    blocks = inception_v3_blocks(keras_layout=False)
    for timm_block, ours, kind in _TIMM_INCEPTION_BLOCKS:
        spec = normalize_branches(blocks[ours][1])
        names = _TIMM_INCEPTION_BRANCHES[kind]
        out = cin if blocks[ours][0] == "reduction" else 0  # the max-pool branch keeps its channels
        for b, (branch, timm_steps) in enumerate(zip(spec, names), start=1):
            c = cin
            for s, (step, timm_step) in enumerate(zip(branch, timm_steps), start=1):
                where = f"{ours}_branch{b}_{s}"
                if step["type"] == "conv":
                    kh, kw = step["kernel_size"]
                    convs.append((f"{timm_block}.{timm_step}", where, step["filters"], c, kh, kw))
                    c = step["filters"]
                elif step["type"] == "factorized":
                    kernels = factor_kernels(step["kernel_size"], step["mode"], step["first_factor"])
                    expanded = step["mode"] == "expanded"
                    for f, ((kh, kw), timm_factor) in enumerate(zip(kernels, timm_step), start=1):
                        last = expanded or f == len(kernels)
                        o = step["filters"] if last else step["intermediate_filters"]
                        convs.append((f"{timm_block}.{timm_factor}", f"{where}_{f}", o, c, kh, kw))
                        c = c if expanded else o
                    c = step["filters"] * (2 if expanded else 1)
            out += c
        cin = out
    return convs


def _inception_v3_aux_convs():
    """timm's auxiliary head on Mixed_6e (768 channels): conv0 1x1 128, conv1 5x5 768."""
    return [(f"{_AUX_PREFIX}.conv0", "aux1_conv1", 128, 768, 1, 1), (f"{_AUX_PREFIX}.conv1", "aux1_conv2", 768, 128, 5, 5)]


def _inception_v3_map():
    params = []
    for convs, aux in ((_inception_v3_convs(), False), (_inception_v3_aux_convs(), True)):
        for prefix, ours, *_ in convs:
            params += [Param(f"{prefix}.conv", f"{ours}_conv", "conv", aux=aux),
                       Param(f"{prefix}.bn", f"{ours}_bn", "bn", aux=aux)]
    params += [Param(f"{_AUX_PREFIX}.fc", "aux1_predictions", "linear", head=True, aux=True),
               Param("fc", "predictions", "linear", head=True)]
    return params


_MAPS = {
    "resnet18": lambda: _resnet_map(18),
    "resnet34": lambda: _resnet_map(34),
    "resnet50": lambda: _resnet_map(50),
    "resnet101": lambda: _resnet_map(101),
    "resnet152": lambda: _resnet_map(152),
    "vgg16": lambda: _vgg_map(16),
    "vgg19": lambda: _vgg_map(19),
    "inception_v3": _inception_v3_map,
}
#: Registry networks whose timm files this module converts.
TIMM_NETWORKS = tuple(_MAPS)
# BN epsilon of timm's networks: torch's default, Inception-v3's 1e-3 (TF's); VGG has no BN.
_BN_EPSILON = {"inception_v3": 1e-3}
_DEFAULT_BN_EPSILON = 1e-5


def timm_key_map(network):
    """The :class:`Param` list mapping timm module names of ``network`` onto our leaf layers.

    Generated from `keras_cnn.models.resnet.RESNET_DEPTHS` / `keras_cnn.models.vgg.VGG_DEPTHS`.

    Args:
        network: one of :data:`TIMM_NETWORKS`.

    Example:
        >>> [p.prefix for p in timm_key_map("resnet18")][:4]
        ['conv1', 'bn1', 'layer1.0.conv1', 'layer1.0.bn1']
    """
    if network not in _MAPS:
        raise ValueError(
            f"timm weights convert into {list(TIMM_NETWORKS)}. Received: a model of network {network!r}"
        )
    return _MAPS[network]()


def expected_timm_shapes(network, classes=1000, aux_logits=False):
    """timm's tensor names and (PyTorch) shapes for ``network``, as its state dict holds them.

    Computed from our architecture tables, independently of any model; used to recognise files.
    ``aux_logits`` adds Inception-v3's auxiliary head (``AuxLogits.*``, in timm's
    ``inception_v3.tv_in1k`` file).
    """
    shapes = {}

    def bn(prefix, n):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (n,)

    if network == "inception_v3":
        convs = _inception_v3_convs() + (_inception_v3_aux_convs() if aux_logits else [])
        for prefix, _, o, i, kh, kw in convs:
            shapes[f"{prefix}.conv.weight"] = (o, i, kh, kw)
            bn(f"{prefix}.bn", o)
        if aux_logits:
            shapes[f"{_AUX_PREFIX}.fc.weight"], shapes[f"{_AUX_PREFIX}.fc.bias"] = (classes, 768), (classes,)
        shapes["fc.weight"], shapes["fc.bias"] = (classes, 2048), (classes,)
    elif network.startswith("resnet"):
        kind, stages = RESNET_DEPTHS[int(network[len("resnet"):])]
        expansion = 1 if kind == "basic" else 4
        shapes["conv1.weight"] = (64, 3, 7, 7)
        bn("bn1", 64)
        cin = 64
        for s, (blocks, width) in enumerate(zip(stages, RESNET_WIDTHS)):
            out = width * expansion
            for b in range(blocks):
                t = f"layer{s + 1}.{b}"
                if b == 0 and cin != out or (b == 0 and s > 0):
                    shapes[f"{t}.downsample.0.weight"] = (out, cin, 1, 1)
                    bn(f"{t}.downsample.1", out)
                if kind == "basic":
                    convs = [(width, cin, 3), (out, width, 3)]
                else:
                    convs = [(width, cin, 1), (width, width, 3), (out, width, 1)]
                for c, (o, i, k) in enumerate(convs, start=1):
                    shapes[f"{t}.conv{c}.weight"] = (o, i, k, k)
                    bn(f"{t}.bn{c}", o)
                cin = out
        shapes["fc.weight"], shapes["fc.bias"] = (classes, cin), (classes,)
    else:
        index, cin = 0, 3
        for convs, width in zip(VGG_DEPTHS[int(network[len("vgg"):])], VGG_WIDTHS):
            for _ in range(convs):
                shapes[f"features.{index}.weight"], shapes[f"features.{index}.bias"] = (width, cin, 3, 3), (width,)
                cin, index = width, index + 2
            index += 1
        shapes["pre_logits.fc1.weight"], shapes["pre_logits.fc1.bias"] = (VGG_FC[0], cin, 7, 7), (VGG_FC[0],)
        shapes["pre_logits.fc2.weight"] = (VGG_FC[1], VGG_FC[0], 1, 1)
        shapes["pre_logits.fc2.bias"] = (VGG_FC[1],)
        shapes["head.fc.weight"], shapes["head.fc.bias"] = (classes, VGG_FC[1]), (classes,)
    return shapes


# --------------------------------------------------------------------------------------------
# Reading and recognising a file.


def _read_header(path):
    """``{name: shape}`` of a safetensors file, from its header only (no tensor is read)."""
    from safetensors import safe_open

    if not is_safetensors_file(path):
        raise ValueError(f"`weights` must be a safetensors file. Received: weights={path!r}, which is not one.")
    with safe_open(path, framework="numpy") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


_LAYER_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.")
_VGG_FEATURE = re.compile(r"^features\.(\d+)\.weight$")


def _identify(shapes):
    """``(network or None, description)`` of what a file with these tensor shapes holds."""
    if "conv1.weight" in shapes and any(_LAYER_BLOCK.match(k) for k in shapes):
        blocks = {}
        for k in shapes:
            m = _LAYER_BLOCK.match(k)
            if m:
                s, b = int(m.group(1)), int(m.group(2))
                blocks[s] = max(blocks.get(s, 0), b + 1)
        stages = tuple(blocks[s] for s in sorted(blocks))
        kind = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
        network = next((f"resnet{d}" for d, spec in RESNET_DEPTHS.items() if spec == (kind, stages)), None)
        what = f"a ResNet with {kind} blocks {'-'.join(map(str, stages))}"
        if network:
            what = f"timm's {network} ({what})"
    elif any(_VGG_FEATURE.match(k) for k in shapes):
        indices = sorted(int(_VGG_FEATURE.match(k).group(1)) for k in shapes if _VGG_FEATURE.match(k))
        per_block, count, prev = [], 0, None
        for i in indices:
            if prev is not None and i - prev == 3:  # a pool between the two convs
                per_block.append(count)
                count = 0
            count, prev = count + 1, i
        per_block.append(count)
        network = next((f"vgg{d}" for d, spec in VGG_DEPTHS.items() if tuple(per_block) == spec), None)
        bn = "with BN " if any(k.endswith("running_mean") for k in shapes) else ""
        what = f"a VGG {bn}with convs per block {'-'.join(map(str, per_block))}"
        if network and not bn:
            what = f"timm's {network} ({what})"
        else:
            network = None
    elif any(k.startswith("Mixed_5b.") for k in shapes):
        network, what = "inception_v3", "timm's inception_v3 (Mixed_5b..Mixed_7c"
        what += ", with its auxiliary head AuxLogits)" if any(k.startswith(f"{_AUX_PREFIX}.") for k in shapes) else ")"
    else:
        some = ", ".join(list(shapes)[:3])
        network, what = None, f"no network known here (first tensors: {some})"
    head = next((shapes[k] for k in ("fc.weight", "head.fc.weight") if k in shapes), None)
    if head is not None:
        what += f", with a {head[0]}-class classifier"
    return network, what


def describe_timm_file(path):
    """What a safetensors file holds: ``(network or None, description)``, from its header.

    Example:
        >>> describe_timm_file("resnet34.safetensors")
        ('resnet34', "timm's resnet34 (a ResNet with basic blocks 3-4-6-3), with a 1000-class classifier")
    """
    return _identify(_read_header(os.fspath(path)))


# --------------------------------------------------------------------------------------------
# Loading.


def _network_of(arch):
    """Registry name for the builder's ``arch`` ("resnet18", ...) if timm weights fit it."""
    return arch if arch in TIMM_NETWORKS else None


def resolve_timm_source(weights, arch):
    """``(path, record or None)`` for ``weights`` = "timm:<tag>" (fetched) or a safetensors path.

    A tag of another network than ``arch`` is refused before anything is downloaded.
    """
    if is_timm_source(weights):
        record = timm_record(weights)
        if arch is not None and record.arch != arch:
            fitting = ", ".join(repr(f"timm:{t}") for t in timm_records(arch))
            raise ValueError(
                f"timm weights 'timm:{record.name}' are {record.arch}'s; this model is {arch}. "
                f"For {arch}: {fitting or 'none'}."
            )
        return get_timm_file(record), record
    return os.fspath(weights), None


def _leaves_by_name(model):
    leaves = {}
    for path, layer in weighted_leaves(model):
        leaves.setdefault(layer.name, []).append((path, layer))
    return leaves


def _kind_of(layer):
    import keras

    for cls, kind in ((keras.layers.Conv2D, "Conv2D"), (keras.layers.BatchNormalization, "BatchNormalization"),
                      (keras.layers.Dense, "Dense")):
        if isinstance(layer, cls):
            return kind
    return type(layer).__name__


def _convert(param, layer, tensors, shapes, epsilon=_DEFAULT_BN_EPSILON):
    """``(assignments, problems)`` for one Param: [(variable, value thunk)], [message].

    ``epsilon``: the BN epsilon of timm's network.
    """
    p = param.prefix
    problems, out = [], []

    def need(key):
        if key not in shapes:
            problems.append(f"tensor {key!r} is missing from the file (needed for our layer {layer.name!r})")
            return False
        return True

    def add(variable, key, fn, expect_shape):
        """Check the converted shape now; read and convert the tensor only at assignment."""
        if not need(key):
            return
        target = tuple(int(d) for d in variable.shape)
        if tuple(expect_shape) != target:
            problems.append(
                f"tensor {key!r} of shape {shapes[key]} gives {tuple(expect_shape)} for {layer.name}/"
                f"{variable.name}, which is {target}"
            )
            return
        out.append((variable, lambda: fn(tensors(key))))

    kind = _kind_of(layer)
    want = {"conv": "Conv2D", "bn": "BatchNormalization", "linear": "Dense", "conv_as_dense": "Dense"}[param.kind]
    if kind != want:
        return [], [f"our layer {layer.name!r} is a {kind}, expected a {want} for timm's {p!r}"]
    if param.kind == "conv":
        w = f"{p}.weight"
        if w in shapes and len(shapes[w]) == 4:
            o, i, kh, kw = shapes[w]
            add(layer.kernel, w, lambda t: np.transpose(t, (2, 3, 1, 0)), (kh, kw, i, o))
        elif need(w):
            problems.append(f"tensor {w!r} has shape {shapes[w]}, not a convolution kernel")
        if layer.use_bias:
            if f"{p}.bias" not in shapes:
                problems.append(
                    f"our layer {layer.name!r} has a bias that timm's {p!r} lacks (a different layout: "
                    "torchvision's convolutions before BN have no bias)"
                )
            else:
                add(layer.bias, f"{p}.bias", lambda t: t, shapes[f"{p}.bias"])
        elif f"{p}.bias" in shapes:
            problems.append(f"timm's {p!r} has a bias that our layer {layer.name!r} lacks")
    elif param.kind == "bn":
        if abs(float(layer.epsilon) - epsilon) > 1e-12:
            problems.append(
                f"our layer {layer.name!r} has BN epsilon {layer.epsilon:g}, timm's {p!r} {epsilon:g} "
                "(a different layout)"
            )
        pairs = [("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                 ("moving_variance", "running_var")]
        for attr, name in pairs:
            variable = getattr(layer, attr, None)
            if variable is None:
                problems.append(f"our layer {layer.name!r} has no {attr} for timm's {p}.{name}")
                continue
            add(variable, f"{p}.{name}", lambda t: t, shapes.get(f"{p}.{name}", ()))
    elif param.kind == "linear":
        w = f"{p}.weight"
        if w in shapes and len(shapes[w]) == 2:
            add(layer.kernel, w, lambda t: np.transpose(t), shapes[w][::-1])
        elif need(w):
            problems.append(f"tensor {w!r} has shape {shapes[w]}, not a linear layer's")
        add(layer.bias, f"{p}.bias", lambda t: t, shapes.get(f"{p}.bias", ()))
    else:  # conv_as_dense: (O, I, kh, kw) -> HWIO -> (kh * kw * I, O), the NHWC flatten order
        w = f"{p}.weight"
        if w in shapes and len(shapes[w]) == 4:
            o, i, kh, kw = shapes[w]
            add(layer.kernel, w, lambda t: np.transpose(t, (2, 3, 1, 0)).reshape(-1, t.shape[0]), (kh * kw * i, o))
        elif need(w):
            problems.append(f"tensor {w!r} has shape {shapes[w]}, not a convolution kernel")
        add(layer.bias, f"{p}.bias", lambda t: t, shapes.get(f"{p}.bias", ()))
    return out, problems


def load_timm_weights(model, weights, *, arch, include_top):
    """Load timm weights into ``model`` (built by the builder of registry network ``arch``).

    Every tensor the model needs is checked (presence, shape after conversion, BN epsilon,
    conv bias or not, BN gamma or not) before any variable is written; a file of another network
    is refused naming the file, what it holds and what was expected. Inception-v3's auxiliary
    head (``AuxLogits``) is loaded into a model built with ``aux_logits=True`` (the file must
    have it: timm's ``inception_v3.tv_in1k``) and skipped otherwise, as timm does.

    Args:
        model: a freshly built model, e.g. ``ResNet18(weights=None)``.
        weights: "timm:<tag>" or a timm `WeightsSpec` (fetched with :func:`get_timm_file`), or a
            safetensors file path.
        arch: our registry name (one of :data:`TIMM_NETWORKS`).
        include_top: whether ``model`` has the classifier (then it must have timm's classes).

    Returns:
        ``model``.

    Raises:
        ValueError: the file does not fit ``model`` (the message says why).
        TimmWeightsUnavailableError: "timm:<tag>" neither cached nor downloadable.
    """
    from safetensors import safe_open

    network = _network_of(arch)
    if network is None:
        raise ValueError(
            f"timm weights convert into {list(TIMM_NETWORKS)} only. Received: "
            f"weights={weights.name if isinstance(weights, WeightsSpec) else weights!r} "
            f"for a model of network {arch!r}."
        )
    leaves = _leaves_by_name(model)
    key_map = timm_key_map(network)
    with_aux = any(p.aux and p.leaf in leaves for p in key_map)
    if is_timm_source(weights):  # check the layout before fetching ~100 MB
        record = timm_record(weights)
        layout = _layout_problems(model, network) if record.arch == network else []
        if layout:
            raise ValueError(
                f"timm weights 'timm:{record.name}' do not fit the model {model.name!r} ({network}): "
                + "; ".join(layout[:2]) + "." + _layout_hint(network, record)
            )
        if with_aux and not record.aux:
            with_head = ", ".join(f"'timm:{t}'" for t, r in timm_records(network).items() if r.aux)
            raise ValueError(
                f"timm weights 'timm:{record.name}' have no auxiliary head, and the model {model.name!r} was "
                f"built with one (aux_logits=True). Build it with aux_logits=False, or use weights with the "
                f"head: {with_head or 'none'}."
            )
    path, record = resolve_timm_source(weights, network)
    shapes = _read_header(path)
    held, what = _identify(shapes)
    if held != network:
        raise ValueError(
            f"The weights file {path!r} holds {what}; this model is {network}, which needs timm's "
            f"{network} weights (e.g. 'timm:{next(iter(timm_records(network)))}')."
        )
    epsilon = _BN_EPSILON.get(network, _DEFAULT_BN_EPSILON)
    assignments, problems = [], []
    with safe_open(path, framework="numpy") as f:

        def read(key):
            return f.get_tensor(key)

        for param in key_map:
            if (param.head and not include_top) or (param.aux and not with_aux):
                continue
            if param.aux and not any(k.startswith(param.prefix + ".") for k in shapes):
                problems.append(
                    f"the model has an auxiliary head (aux_logits=True) and the file has none ({param.prefix!r} "
                    "is missing); build with aux_logits=False"
                )
                break
            found = leaves.get(param.leaf, [])
            if len(found) != 1:
                problems.append(
                    f"our model has {'no' if not found else len(found)} layer(s) named {param.leaf!r} "
                    f"for timm's {param.prefix!r}"
                )
                continue
            out, bad = _convert(param, found[0][1], read, shapes, epsilon)
            assignments += out
            problems += bad
        if problems:
            raise ValueError(
                f"The weights file {path!r} ({what}) does not fit the model {model.name!r} "
                f"({network}, include_top={include_top}): {len(problems)} problem(s), first: "
                + "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "") + "."
                + _layout_hint(network, record)
            )
        values = [(variable, thunk()) for variable, thunk in assignments]
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
    return model


def _layout_hint(network, record):
    """" These weights need ..." for a record, else the layout every timm file of ``network`` needs."""
    needed = dict(record.build_args) if record is not None else source_build_args(network, "timm")
    if not needed:
        return ""
    args = ", ".join(f"{k}={v!r}" for k, v in needed.items())
    if record is None:  # a file carries no record
        return f" timm's {network} is torchvision's layout: build the model with {args}."
    return f" These weights need the builder argument(s) {args}."


def _layout_problems(model, network):
    """Problems mapping timm's ``network`` (shapes from our tables) onto ``model``'s backbone."""
    shapes = expected_timm_shapes(network)
    epsilon = _BN_EPSILON.get(network, _DEFAULT_BN_EPSILON)
    leaves = _leaves_by_name(model)
    problems = []
    for param in timm_key_map(network):
        found = leaves.get(param.leaf, [])
        if param.head or param.aux:
            continue
        if len(found) != 1:
            problems.append(f"no single layer {param.leaf!r}")
            continue
        problems += _convert(param, found[0][1], None, shapes, epsilon)[1]
    return problems


def load_timm_record(model, record, *, include_top):
    """Load the timm weights of the `WeightsSpec` ``record`` (fetched with :func:`get_timm_file`)."""
    return load_timm_weights(model, record, arch=record.arch, include_top=include_top)
