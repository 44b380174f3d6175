"""Grad-CAM: where a classifier looks when it decides (Selvaraju et al., 2017).

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, equations 1-2: for a class ``c`` with score ``y^c`` (before the
softmax) and the feature maps ``A^k`` of a convolutional layer,

    alpha_k^c = 1/Z * sum_ij d y^c / d A^k_ij             (1: global-average-pooled gradients)
    L^c       = ReLU(sum_k alpha_k^c * A^k)               (2)

``L^c`` has the layer's resolution; `grad_cam` resizes it bilinearly to the input's and scales
each map to ``[0, 1]`` (its maximum becomes 1; an all-zero map stays zero).

The layer: by default the last stage tap of the network's spec
(`keras_cnn.models.ModelSpec.stages`), the network being read from the model's identity
(`keras_cnn.models.model_identity`), so a transfer model (its base nested as one layer), an
auxiliary-head network (its main output, "predictions", is explained) and a model reloaded from
``.keras`` all find it. Any layer with a ``(H, W, C)`` feature map can be named instead, also
inside a nested model; a model keras_cnn did not build needs ``layer=``.

The score ``y^c``: when the explained output comes from a softmax (a ``Dense`` with a softmax
activation, or a softmax ``Activation``/``Softmax`` layer, also behind a float32 cast), its
input logits are used, as in the paper; any other output is used as it is.

Mixed precision: the feature maps and gradients are cast to float32 before equations 1-2.
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np

from keras_cnn.models.identity import model_identity

__all__ = ["GradCam", "grad_cam", "grad_cam_details", "overlay", "panel", "resolve_layer"]

logger = logging.getLogger(__name__)

#: The main output of a dict-output (auxiliary-head) keras_cnn network (`keras_cnn.models._common.finish_model`).
MAIN_OUTPUT = "predictions"


@dataclasses.dataclass(frozen=True)
class GradCam:
    """The result of `grad_cam_details`.

    Attributes:
        heatmaps: float32 ``(N, H, W)`` in ``[0, 1]``, at the input's resolution.
        probabilities: float32 ``(N, classes)``: the explained output for each image.
        class_index: int64 ``(N,)``: the class each map explains.
        layer: the name of the layer whose feature maps were used.
    """

    heatmaps: np.ndarray
    probabilities: np.ndarray
    class_index: np.ndarray
    layer: str


def _find_layer(model, name, path=()):
    """``[(path of nested models, layer)]`` for every layer called ``name`` in ``model``."""
    found = []
    for layer in model.layers:
        if layer.name == name:
            found.append(((*path, model), layer))
        if isinstance(layer, keras.Model):
            found.extend(_find_layer(layer, name, (*path, model)))
    return found


def resolve_layer(model, layer=None):
    """The layer Grad-CAM uses: ``layer`` (a name, or a layer of ``model``) or the default tap.

    Returns:
        ``(nested models from ``model`` down to the layer's own model, the layer)``.

    Raises:
        ValueError: no default (``model`` was not built by keras_cnn), an unknown or ambiguous
            name, or a layer without a ``(H, W, C)`` feature map.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    if layer is None:
        identity = model_identity(model)
        if identity is None:
            raise ValueError(
                f"`layer` is required: model {model.name!r} was not built by keras_cnn (it has no keras_cnn "
                "identity), so its stage taps are unknown; pass layer=<the name of a convolutional layer>. "
                "Received: layer=None"
            )
        stages = identity.spec.stages
        if not stages:
            raise ValueError(f"`layer` is required: {identity.arch} declares no stage taps. Received: layer=None")
        name = list(stages.values())[-1]
    elif isinstance(layer, keras.layers.Layer):
        name = layer.name
    elif isinstance(layer, str):
        name = layer
    else:
        raise ValueError(f"`layer` must be a layer name, a keras layer or None. Received: layer={layer!r}")
    found = _find_layer(model, name)
    if isinstance(layer, keras.layers.Layer):
        found = [(path, lay) for path, lay in found if lay is layer]
    if not found:
        raise ValueError(
            f"`layer` {name!r} is not a layer of model {model.name!r} (nor of a model nested in it). "
            f"Received: layer={name!r}"
        )
    if len(found) > 1:
        where = [" > ".join(m.name for m in path) for path, _ in found]
        raise ValueError(f"`layer` {name!r} names {len(found)} layers ({where}); pass the layer itself. "
                         f"Received: layer={name!r}")
    path, target = found[0]
    shape = target.output.shape if _has_output(target) else None
    if shape is None or len(shape) != 4:
        raise ValueError(
            f"`layer` must have a (H, W, C) feature map output to explain with; {name!r} outputs {shape}. "
            f"Received: layer={name!r}"
        )
    return path, target


def _has_output(layer):
    try:
        layer.output  # noqa: B018 - raises for a layer called more than once or never
    except (AttributeError, ValueError):
        return False
    return True


def _is_softmax(activation):
    return getattr(activation, "__name__", None) == "softmax"


def _main(output):
    if isinstance(output, dict):
        if MAIN_OUTPUT not in output:
            raise ValueError(f"`model` outputs a dict without a {MAIN_OUTPUT!r} key to explain. "
                             f"Received: outputs={sorted(output)}")
        return output[MAIN_OUTPUT]
    if isinstance(output, (list, tuple)):
        raise ValueError(f"`model` must have one output (or a dict with {MAIN_OUTPUT!r}) to explain. "
                         f"Received: {len(output)} outputs")
    return output


def _head(made_by, output):
    """``(classifier layer or None, the score input tensor or None)`` of ``output``: the logits
    of a softmax (behind a float32 cast too), else None (the output is the score)."""
    head, head_input = made_by.get(id(output), (None, None))
    while (isinstance(head, keras.layers.Activation) and getattr(head.activation, "__name__", "") == "linear"
           and id(head_input) in made_by):  # a float32 cast after the classifier (mixed precision)
        head, head_input = made_by[id(head_input)]
    if isinstance(head, keras.layers.Dense) and _is_softmax(head.activation):
        return head, head_input
    if isinstance(head, keras.layers.Softmax) or (
            isinstance(head, keras.layers.Activation) and _is_softmax(head.activation)):
        return None, head_input
    return None, None


def _split(model, nested, target):
    """``model`` with extra outputs: ``(model of pixels -> {"maps", "out/<key>" or "out", "score_input"?},
    the classifier Dense or None)``.

    The graph is rebuilt from the layers themselves (`keras.models.clone_model` with each layer as
    its own clone: every weight is shared) with a ``call_function`` that records the target's output
    and which layer made which tensor; a nested model on the way to the target (``nested``) is
    replaced by its own split, so its feature maps become an output of the outer graph.
    """
    captured, made_by, inner = {}, {}, {}

    def call(layer, *args, **kwargs):
        if nested and layer is nested[0]:
            sub, dense = _split(layer, nested[1:], target)
            kwargs.pop("mask", None)
            outs = sub(*args, **kwargs)
            captured["maps"] = outs["maps"]
            out = outs["out"] if "out" in outs else {k[4:]: v for k, v in outs.items() if k.startswith("out/")}
            if "score_input" in outs:
                inner[id(_main(out))] = (dense, outs["score_input"])
            return out
        out = layer(*args, **kwargs)
        if layer is target:
            captured["maps"] = out
        if not isinstance(out, (dict, list, tuple)):
            made_by[id(out)] = (layer, args[0] if args else None)
        return out

    if isinstance(model, keras.Sequential):  # the same layers as a graph (call_function needs one)
        model = keras.Model(model.inputs, model.outputs[0], name=model.name)
    clone = keras.models.clone_model(model, clone_function=lambda lay: lay, call_function=call)
    output = clone.output
    main = _main(output)
    outputs = {"maps": captured["maps"]}
    if isinstance(output, dict):
        outputs.update({f"out/{k}": v for k, v in output.items()})
    else:
        outputs["out"] = output
    dense, score_input = inner.get(id(main)) or _head(made_by, main)
    if score_input is not None:
        outputs["score_input"] = score_input
    return keras.Model(clone.inputs, outputs, name=f"{model.name}_gradcam"), dense


def _explain_model(model, path, target):
    """``(model of pixels -> {"maps", "probabilities", "score_input"?}, the classifier Dense or None)``."""
    split, dense = _split(model, list(path[1:]), target)
    outputs = split.output
    probabilities = outputs["out"] if "out" in outputs else outputs.get(f"out/{MAIN_OUTPUT}")
    if probabilities is None:
        _main({k[4:]: v for k, v in outputs.items() if k.startswith("out/")})  # raises, naming the keys
    if len(probabilities.shape) != 2:
        raise ValueError(
            f"`model` must output class scores (N, classes) to explain. Received: output shape {probabilities.shape}")
    kept = {"maps": outputs["maps"], "probabilities": probabilities}
    if "score_input" in outputs:
        kept["score_input"] = outputs["score_input"]
    return keras.Model(split.inputs, kept, name=split.name), dense


def _check_images(model, images):
    x = np.asarray(images, dtype="float32")
    if x.ndim == 3:
        x = x[None]
    shape = tuple(model.inputs[0].shape[1:])
    if x.ndim != 4 or x.shape[-1] != shape[-1] or any(
            want is not None and got != want for want, got in zip(shape[:2], x.shape[1:3])):
        raise ValueError(
            f"`images` must be (N, H, W, C) or (H, W, C) arrays matching the model's input {shape}. "
            f"Received: images with shape {np.shape(images)}"
        )
    if not len(x):
        raise ValueError("`images` is empty. Received: images with shape (0, ...)")
    return x


def _class_indices(class_index, n, classes):
    """``class_index`` (an int or one int per image) -> int64 ``(n,)``, checked against ``classes``."""
    indices = np.asarray(class_index)
    if indices.ndim == 0:
        indices = np.full((n,), class_index) if isinstance(class_index, (int, np.integer)) else indices
    ok = (indices.shape == (n,) and not isinstance(class_index, bool) and np.issubdtype(indices.dtype, np.integer)
          and indices.min() >= 0 and indices.max() < classes)
    if not ok:
        raise ValueError(
            f"`class_index` must be None, an int or one int per image ({n}), each in 0..{classes - 1}. "
            f"Received: class_index={class_index!r}"
        )
    return indices.astype("int64")


def grad_cam_details(model, images, class_index=None, layer=None, *, batch_size=32):
    """Grad-CAM heat maps with the predictions they explain (see `grad_cam`).

    Returns:
        A `GradCam`.
    """
    import tensorflow as tf

    path, target = resolve_layer(model, layer)
    x = _check_images(model, images)
    explainer, dense = _explain_model(model, path, target)
    fixed = None if class_index is None else _class_indices(
        class_index, len(x), int(explainer.output["probabilities"].shape[-1]))
    maps, probs, classes = [], [], []
    for start in range(0, len(x), batch_size):
        batch = tf.convert_to_tensor(x[start:start + batch_size])
        with tf.GradientTape() as tape:
            tape.watch(batch)  # every op is recorded, also through frozen layers
            out = explainer(batch, training=False)
            p = tf.cast(out["probabilities"], tf.float32)
            chosen = p.numpy().argmax(axis=-1).astype("int64") if fixed is None else fixed[start:start + batch_size]
            if dense is not None:
                scores = tf.matmul(tf.cast(out["score_input"], tf.float32), tf.cast(dense.kernel, tf.float32))
                if dense.use_bias:
                    scores += tf.cast(dense.bias, tf.float32)
            else:
                scores = tf.cast(out.get("score_input", out["probabilities"]), tf.float32)
            score = tf.gather(scores, chosen, axis=1, batch_dims=1)
        grads = tape.gradient(score, out["maps"])
        a = tf.cast(out["maps"], tf.float32)
        if grads is None:
            raise ValueError(f"`layer` {target.name!r}: the explained output does not depend on it. "
                             f"Received: layer={target.name!r}")
        grads = tf.cast(grads, tf.float32)
        alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # equation 1
        cam = tf.nn.relu(tf.reduce_sum(alpha * a, axis=-1, keepdims=True))  # equation 2
        cam = tf.image.resize(cam, x.shape[1:3], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        maps.append(tf.math.divide_no_nan(cam, peak).numpy())
        probs.append(p.numpy())
        classes.append(chosen)
    return GradCam(np.concatenate(maps).astype("float32"), np.concatenate(probs), np.concatenate(classes),
                   target.name)


def grad_cam(model, images, class_index=None, layer=None):
    """Grad-CAM heat maps (Selvaraju et al., 2017, equations 1-2) at the input's resolution.

    Args:
        model: a classifier `keras.Model` taking the pixels ``images`` holds; a dict-output model
            (auxiliary heads) is explained through its "predictions" output.
        images: ``(N, H, W, C)`` or one ``(H, W, C)`` image, as the model takes them (raw
            0..255 pixels for keras_cnn's trained models).
        class_index: the class to explain: None (each image's predicted class), an int, or one
            int per image. Default None.
        layer: the layer's name (also inside a nested model) or the layer; None: the last stage
            tap of the network's spec (a model keras_cnn did not build needs it). Default None.

    Returns:
        float32 ``(N, H, W)`` heat maps in ``[0, 1]``.

    Raises:
        ValueError: no default layer, an unknown layer or one without a feature map, images
            that do not fit the model, or a class index out of range.

    Example:
        >>> maps = grad_cam(model, images)            # (N, H, W), peak 1 where the model looked
        >>> png = overlay(images[0], maps[0])         # uint8 RGB image for a PNG
    """
    return grad_cam_details(model, images, class_index, layer).heatmaps


def overlay(image, heatmap, *, alpha=0.45, colormap="jet"):
    """``image`` with ``heatmap`` blended over it in ``colormap`` colours.

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` pixels in 0..255.
        heatmap: ``(H, W)`` in ``[0, 1]`` (e.g. one map of `grad_cam`).
        alpha: the heat map's weight. Default 0.45.
        colormap: a matplotlib colormap name. Default "jet".

    Returns:
        uint8 ``(H, W, 3)`` RGB (``PIL.Image.fromarray(...).save("x.png")`` writes it).
    """
    import matplotlib

    pixels = np.asarray(image, dtype="float32")
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    heat = np.asarray(heatmap, dtype="float32")
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or heat.shape != pixels.shape[:2]:
        raise ValueError(
            f"`image` must be (H, W), (H, W, 1) or (H, W, 3) and `heatmap` (H, W) of the same size. "
            f"Received: image {np.shape(image)}, heatmap {np.shape(heatmap)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    colours = matplotlib.colormaps[colormap](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * np.clip(pixels, 0, 255) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype("uint8")


def panel(image, heatmap, lines, *, size=192):
    """One picture explaining one image: the input, the heat map, the overlay, then ``lines`` of text.

    Args:
        image: ``(H, W[, C])`` pixels in 0..255.
        heatmap: ``(H, W)`` in ``[0, 1]``.
        lines: text lines shown right of the images (e.g. the top-k classes).
        size: the long side of each of the three tiles, in pixels. Default 192.

    Returns:
        uint8 ``(height, width, 3)`` RGB.
    """
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    blended = overlay(image, heatmap)
    pixels = np.clip(np.asarray(image, "float32"), 0, 255)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    gray = np.repeat(pixels, 3, -1) if pixels.shape[-1] == 1 else pixels
    heat = matplotlib.colormaps["jet"](np.clip(np.asarray(heatmap, "float32"), 0, 1))[..., :3] * 255
    tiles = []
    for array, sharp in ((gray, True), (heat, False), (blended, True)):
        tile = Image.fromarray(np.asarray(np.rint(array), "uint8"))
        scale = size / max(tile.size)
        target = (max(1, round(tile.size[0] * scale)), max(1, round(tile.size[1] * scale)))
        tiles.append(tile.resize(target, Image.NEAREST if sharp and scale >= 1 else Image.BILINEAR))
    font = ImageFont.load_default(size=15)
    text_width = max([int(font.getlength(line)) for line in lines] + [0]) + 24
    pad, h = 8, tiles[0].size[1]
    canvas = Image.new("RGB", (pad + sum(t.size[0] + pad for t in tiles) + text_width,
                               max(h, 22 * len(lines) + 8) + 2 * pad), "white")
    x = pad
    for tile in tiles:
        canvas.paste(tile, (x, pad))
        x += tile.size[0] + pad
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((x + 8, pad + 4 + 22 * i), line, fill=(20, 24, 32), font=font)
    return np.asarray(canvas)
