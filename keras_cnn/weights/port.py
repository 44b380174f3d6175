"""Porting weights between two builds of one architecture, leaf layer by leaf layer.

:func:`port_weights` copies the weights of a keras.applications model into our twin (or between
any two models with the same weighted leaves): both are reduced to their weighted leaf layers
(:func:`weighted_leaves`, descending into composite layers such as `ConvBN`), paired by name or
by creation order, every shape compared, and only then written.
"""

from __future__ import annotations

import re

import keras

from keras_cnn._compat import keras_ as keras_compat
from keras_cnn._validation import check_choice

__all__ = ["MATCH_MODES", "port_weights", "weighted_leaves"]


def _leaf_kind(layer):
    """The Keras built-in class a layer is (or derives from): "Conv2D", "BatchNormalization"..."""
    for cls in type(layer).__mro__:
        if cls is keras.layers.Layer:
            break
        if cls.__module__.startswith("keras."):
            return cls.__name__
    return type(layer).__name__


def weighted_leaves(model):
    """The leaf layers that hold weights, with their paths, descending into composite layers.

    Order: ``model.layers`` order at the top (Keras' topological order for a Functional model),
    then each composite layer's tracking order (the order its ``__init__`` assigned sub-layers).

    Args:
        model: a `keras.Model` or layer.

    Returns:
        list of ``(path, layer)``, where ``path`` joins the names from the top, e.g.
        "conv2_block1/conv2_block1_1/conv2_block1_1_conv".
    """
    out, seen = [], set()

    def visit(layer, path):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        children = keras_compat.flatten_layers(layer, recursive=False)
        if not children:
            if layer.weights:
                out.append((path, layer))
            return
        for child in children:
            visit(child, f"{path}/{child.name}")

    top = model.layers if isinstance(model, keras.Model) else [model]
    for layer in top:
        visit(layer, layer.name)
    return out


_AUTO_NAME = re.compile(r"^(?P<base>.+?)(?:_(?P<n>\d+))?$")


def _creation_sorted(leaves):
    """Leaves of one kind in creation order.

    Keras numbers auto-named layers in creation order ("conv2d", "conv2d_1", ...), which for a
    keras.applications model with branches (InceptionV3) differs from ``model.layers``' order
    (by graph depth). When every leaf of a kind is auto-named, sort by that number; otherwise
    keep the traversal order.
    """
    if not leaves:
        return leaves
    keys = []
    for _, layer in leaves:
        base = keras_compat.to_snake_case(type(layer).__name__)
        m = _AUTO_NAME.match(layer.name)
        if m is None or m.group("base") != base:
            return leaves
        keys.append(int(m.group("n") or 0))
    if len(set(keys)) != len(keys):
        return leaves
    return [leaf for _, leaf in sorted(zip(keys, leaves), key=lambda t: t[0])]


def _shapes(layer):
    return [tuple(int(d) for d in w.shape) for w in layer.weights]


def _describe(path, layer):
    return f"{path!r} ({_leaf_kind(layer)}, weight shapes {_shapes(layer)})"


def _leaf_names(leaves):
    """Names each leaf answers to: its own, then every enclosing composite layer whose only
    weighted leaf it is (a `ConvBN` without BN named "block1_conv1" around the Conv2D
    "block1_conv1_conv" answers to "block1_conv1", keras' name of that Conv2D)."""
    counts = {}
    for path, _ in leaves:
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            counts[prefix] = counts.get(prefix, 0) + 1
    names = []
    for path, layer in leaves:
        parts = path.split("/")
        aliases = [parts[i - 1] for i in range(len(parts) - 1, 0, -1) if counts["/".join(parts[:i])] == 1]
        names.append([layer.name] + aliases)
    return names


def _name_index(leaves):
    """name -> leaf index; own names win over aliases; an ambiguous alias is dropped."""
    index, alias_hits = {}, {}
    for i, names in enumerate(_leaf_names(leaves)):
        index.setdefault(names[0], i)
        for alias in names[1:]:
            alias_hits.setdefault(alias, []).append(i)
    for alias, hits in alias_hits.items():
        if alias not in index and len(hits) == 1:
            index[alias] = hits[0]
    return index


def _pairs_by_name(src, dst):
    """Pair leaves by name (or alias); return pairs, the unpaired source and target leaves."""
    dst_index = _name_index(dst)
    pairs, src_left, used = [], [], set()
    for (path, layer), names in zip(src, _leaf_names(src)):
        j = next((dst_index[n] for n in names if n in dst_index and dst_index[n] not in used), None)
        if j is None:
            src_left.append((path, layer))
            continue
        used.add(j)
        pairs.append(((path, layer), dst[j]))
    dst_left = [leaf for j, leaf in enumerate(dst) if j not in used]
    return pairs, src_left, dst_left


def _pairs_by_order(src, dst):
    """Pair leaves kind by kind, in creation order; return pairs and the unpaired leaves."""
    kinds = list(dict.fromkeys(_leaf_kind(layer) for _, layer in src + dst))
    pairs, extra_src, extra_dst = [], [], []
    for kind in kinds:
        a = _creation_sorted([leaf for leaf in src if _leaf_kind(leaf[1]) == kind])
        b = _creation_sorted([leaf for leaf in dst if _leaf_kind(leaf[1]) == kind])
        pairs.extend(zip(a, b))
        extra_src.extend(a[len(b):])
        extra_dst.extend(b[len(a):])
    # Report in the source's traversal order.
    rank = {id(layer): i for i, (_, layer) in enumerate(src)}
    pairs.sort(key=lambda p: rank[id(p[0][1])])
    return pairs, extra_src, extra_dst


MATCH_MODES = ("auto", "name", "order")


def port_weights(source_model, target_model, *, match="auto"):
    """Copy the weights of a keras.applications model into our twin, checking every layer.

    Both models are reduced to their weighted leaf layers (Conv2D, BatchNormalization, Dense,
    ...; composite layers such as `ConvBN` or a residual block are descended into, see
    :func:`weighted_leaves`). Leaves are then paired:

    * by name (``match="name"``) -- ResNet and VGG, whose leaf names mirror keras
      ("conv2_block1_0_conv", "predictions"); a composite layer whose only weighted leaf is
      the layer also lends it its name (VGG's `ConvBN` "block1_conv1" around the Conv2D
      "block1_conv1_conv");
    * by order (``match="order"``), kind by kind (the k-th Conv2D to the k-th Conv2D...), in
      creation order -- InceptionV3, whose keras names are auto-numbered ("conv2d_17");
      creation order is read from those numbers on the keras side and from the composite
      layers' construction order on ours;
    * ``match="auto"`` (default): by name when the leaf names are unique on both sides and at
      least half of the source's leaves find their name in the target, by order otherwise.

    Every pair's weight shapes are compared *before* anything is written, so on a mismatch the
    target is left untouched.

    Args:
        source_model: the model whose weights are copied (e.g. ``keras.applications.ResNet50``).
        target_model: the model receiving them (e.g. ``ResNet50Custom(weights=None)``).
        match: "auto", "name" or "order". Default "auto".

    Returns:
        The pairs used, as a list of ``(source_layer_path, target_layer_path)``, source order.

    Raises:
        ValueError: the architectures differ; the message names the first mismatching layer
            (source layer name, target sub-layer path, weight shapes) or the first layer
            without a counterpart.

    Example:
        >>> src = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
        >>> dst = ResNet50Custom(weights=None, include_top=False, input_shape=(64, 64, 3))
        >>> pairs = port_weights(src, dst)  # 106 leaves: 53 Conv2D + 53 BatchNormalization
    """
    check_choice("match", match, MATCH_MODES)
    src = weighted_leaves(source_model)
    dst = weighted_leaves(target_model)
    src_names = [layer.name for _, layer in src]
    dst_names = [layer.name for _, layer in dst]
    unique = len(set(src_names)) == len(src_names) and len(set(dst_names)) == len(dst_names)
    if match == "auto":
        named = _pairs_by_name(src, dst)[0] if unique else []
        match = "name" if unique and src and len(named) * 2 >= len(src) else "order"
    if match == "name" and not unique:
        raise ValueError(
            "port_weights: leaf layer names are not unique, so `match`='name' cannot pair them; "
            "use match='order'. Received: match='name'"
        )
    s_name, t_name = getattr(source_model, "name", "source"), getattr(target_model, "name", "target")
    header = f"port_weights: the architectures of {s_name!r} (source) and {t_name!r} (target) differ"

    if match == "name":
        pairs, src_left, dst_left = _pairs_by_name(src, dst)
    else:
        pairs, src_left, dst_left = _pairs_by_order(src, dst)

    how = "by name" if match == "name" else "by order, kind by kind"
    counts = f"source has {len(src)} weighted layers, target {len(dst)}"
    rank = {id(layer): i for i, (_, layer) in enumerate(src)}
    problems = []  # (position in the source's order, message)
    for (sp, sl), (tp, tl) in pairs:
        if _leaf_kind(sl) != _leaf_kind(tl) or _shapes(sl) != _shapes(tl):
            problems.append((rank[id(sl)], (
                f"first mismatch (paired {how}) at source layer {_describe(sp, sl)} "
                f"vs target layer {_describe(tp, tl)}."
            )))
    for sp, sl in src_left:
        problems.append((rank[id(sl)], (
            f"source layer {_describe(sp, sl)} has no counterpart in the target (paired {how}; {counts})."
        )))
    for j, (tp, tl) in enumerate(dst_left):
        problems.append((len(src) + j, (
            f"target layer {_describe(tp, tl)} has no counterpart in the source (paired {how}; {counts})."
        )))
    if problems:
        raise ValueError(f"{header}: {min(problems, key=lambda p: p[0])[1]}")
    for (_, sl), (_, tl) in pairs:
        tl.set_weights(sl.get_weights())
    return [(sp, tp) for (sp, _), (tp, _) in pairs]
