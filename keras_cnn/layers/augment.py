"""Augmentation layers that Keras lacks, written to run on the accelerator.

Data augmentation as in the lectures (Ng, CNN course, week 2; Krizhevsky, Sutskever & Hinton,
"ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012, section 4.1): mirroring,
random cropping, rotation, shearing, local warping, colour shifting and PCA colour augmentation.
Keras 3 already has mirroring (``RandomFlip``), rotation (``RandomRotation``), shearing
(``RandomShear``), translation and zoom; this module adds the rest:

* `RandomPerImageCrop` - a random crop with a *different* box per image, resized back to the input
  size (``keras.layers.RandomCrop`` draws one offset per batch);
* `RandomWarp` - local warping by a smooth random displacement field (``keras.layers.
  RandomElasticTransform`` in Keras 3.15 draws the x and y displacements from the same seed, so
  they are identical, and unrolls a Python loop over a static batch size; it cannot run on a
  dynamic batch);
* `RandomColorShift` - per-image, per-channel offsets added to R, G, B;
* `PCAColorAugmentation` - AlexNet's "fancy PCA" colour augmentation.

Every layer here:

* works on raw pixels in ``value_range`` (``(0, 255)`` in this package) and, like Keras'
  augmentation layers, computes in the layer's dtype (`keras_cnn.data.augment.build_augmenter`
  gives them ``dtype="float32"`` so that mixed precision does not round the pixels);
* is random per image, seeded by ``seed`` (same seed, same sequence of outputs);
* is the identity when called with ``training=False`` (inference, ``model.predict``, export), and
  augments otherwise (``training`` defaults to True, as for Keras' augmentation layers);
* is written with ``keras.ops`` only (no NumPy, no Python side effects in ``call``), so it traces
  into the compiled training step and runs wherever the step runs (GPU/TPU), also under XLA
  (``jit_compile=True``), and inside a ``tf.data`` map with the TensorFlow backend;
* accepts ``[B, H, W, C]`` batches (or a single ``[H, W, C]`` image), channels last.

Colour ops on grayscale inputs (the choice of this package): `RandomColorShift` on one channel is a
per-image brightness offset; `PCAColorAugmentation` on one channel needs 1-channel statistics
(``eigvals`` of shape [1], ``eigvecs`` [[1.0]]) and then adds ``alpha * lambda`` to every pixel.
Statistics whose size does not match the channels raise a ValueError when the layer is built.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

__all__ = ["PCAColorAugmentation", "RandomColorShift", "RandomPerImageCrop", "RandomWarp"]


def _check_value_range(value_range):
    if value_range is None:
        return None
    ok = isinstance(value_range, (tuple, list)) and len(value_range) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range)
    if not ok or not value_range[0] < value_range[1]:
        raise ValueError(
            f"`value_range` must be None or (low, high) with low < high. Received: value_range={value_range!r}"
        )
    return (float(value_range[0]), float(value_range[1]))


def _check_number(arg, value, *, low=0.0, high=None, low_inclusive=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= low if low_inclusive else value > low) and (high is None or value <= high)
    if not ok:
        lo = "[" if low_inclusive else "("
        hi = f"{high}]" if high is not None else "inf)"
        raise ValueError(f"`{arg}` must be a number in {lo}{low}, {hi}. Received: {arg}={value!r}")
    return float(value)


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"`seed` must be None or an int. Received: seed={seed!r}")
    return seed


class _RandomImageLayer(keras.layers.Layer):
    """Shared plumbing: seed generator, rank handling, identity at inference."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = _check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise ValueError(
                f"{type(self).__name__} expects images [B, H, W, C] or [H, W, C]. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} needs a known number of channels. Received: input_shape={tuple(input_shape)}"
            )

    def call(self, inputs, training=True):
        if not training:
            return inputs
        x = ops.cast(inputs, self.compute_dtype)
        if len(x.shape) == 3:
            return ops.squeeze(self._augment(ops.expand_dims(x, 0)), 0)
        return self._augment(x)

    def _augment(self, images):  # pragma: no cover - abstract
        raise NotImplementedError

    def _batch_size(self, images):
        return ops.shape(images)[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _sample(images, ys, xs, interpolation="bilinear"):
    """Sample ``images [B, H, W, C]`` at float pixel coordinates ``ys, xs [B, H', W']``.

    Coordinates are clamped to the image (edge pixels repeat). Written with a gather on the
    flattened batch, so that it compiles with XLA (TensorFlow's ``ImageProjectiveTransformV3``,
    behind ``keras.ops.image.affine_transform``, does not).
    """
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    batch = ops.shape(images)[0]
    ys = ops.clip(ys, 0.0, height - 1.0)
    xs = ops.clip(xs, 0.0, width - 1.0)
    base = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (-1, 1, 1))
    flat = ops.reshape(images, (-1, channels))

    def gather(yy, xx):
        return ops.take(flat, base + yy * width + xx, axis=0)

    if interpolation == "nearest":
        return gather(ops.cast(ops.round(ys), "int32"), ops.cast(ops.round(xs), "int32"))
    y0 = ops.floor(ys)
    x0 = ops.floor(xs)
    wy = ops.expand_dims(ys - y0, -1)
    wx = ops.expand_dims(xs - x0, -1)
    y0 = ops.cast(y0, "int32")
    x0 = ops.cast(x0, "int32")
    y1 = ops.minimum(y0 + 1, height - 1)
    x1 = ops.minimum(x0 + 1, width - 1)
    top = gather(y0, x0) * (1.0 - wx) + gather(y0, x1) * wx
    bottom = gather(y1, x0) * (1.0 - wx) + gather(y1, x1) * wx
    return top * (1.0 - wy) + bottom * wy


def _check_static_size(layer, input_shape):
    if input_shape[-3] is None or input_shape[-2] is None:
        raise ValueError(
            f"{type(layer).__name__} needs a static image height and width. Received: input_shape={tuple(input_shape)}"
        )


def _clip(images, value_range):
    if value_range is None:
        return images
    return ops.clip(images, value_range[0], value_range[1])


@keras.saving.register_keras_serializable(package="keras_cnn")
class RandomPerImageCrop(_RandomImageLayer):
    """Random crop with a different box per image, resized back to the input size.

    Random cropping of Krizhevsky et al. (2012, section 4.1: random 224x224 patches of the 256x256
    images) and of the lectures (Ng, CNN course, week 2: "not so aggressive that the object is lost").
    Each image gets its own square-ish box whose sides are a fraction ``s ~ U(scale)`` of the
    image's, at a uniform random offset inside the image; the box is resampled (bilinear) back to
    ``H x W`` by a per-image gather (no Python loop; compiles with XLA).

    Deviation from the paper: AlexNet cropped to a smaller input and averaged ten crops at test
    time; here the crop is resized back, so the model keeps its input size and sees the whole
    image at inference. ``keras.layers.RandomCrop`` draws one offset for the whole batch; this
    layer draws one per image.

    Args:
        scale: side fraction of the crop box: a float ``s`` (range ``(s, 1.0)``) or a pair
            ``(min, max)`` in (0, 1]. Default ``(0.8, 1.0)`` (at least 64 % of the area kept).
        interpolation: "bilinear" or "nearest". Default "bilinear".
        seed: int or None. Default None.

    Example:
        >>> RandomPerImageCrop(0.8, seed=1)(np.zeros((4, 32, 32, 3)), training=True).shape
        (4, 32, 32, 3)
    """

    def __init__(self, scale=(0.8, 1.0), interpolation="bilinear", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(scale, (int, float)) and not isinstance(scale, bool):
            scale = (scale, 1.0)
        ok = isinstance(scale, (tuple, list)) and len(scale) == 2
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale)
        if not ok or not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(
                "`scale` must be a float in (0, 1] or a pair (min, max) with 0 < min <= max <= 1. "
                f"Received: scale={scale!r}"
            )
        self.scale = (float(scale[0]), float(scale[1]))
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                f"`interpolation` must be one of ['bilinear', 'nearest']. Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation

    def build(self, input_shape):
        super().build(input_shape)
        _check_static_size(self, input_shape)

    def _augment(self, images):
        batch = self._batch_size(images)
        height, width = images.shape[1], images.shape[2]
        dtype = self.compute_dtype
        s = keras.random.uniform((batch, 1, 1), self.scale[0], self.scale[1], dtype=dtype, seed=self.seed_generator)
        u = keras.random.uniform((batch, 1, 2), 0.0, 1.0, dtype=dtype, seed=self.seed_generator)
        # Output pixel (y, x) samples the input at (oy + s*y, ox + s*x); the box
        # [ox, ox + s*(W-1)] stays inside [0, W-1] for ox in [0, (1-s)*(W-1)].
        oy = u[..., 0:1] * (1.0 - s) * (height - 1.0)
        ox = u[..., 1:2] * (1.0 - s) * (width - 1.0)
        ys = oy + s * ops.reshape(ops.arange(height, dtype=dtype), (1, height, 1))
        xs = ox + s * ops.reshape(ops.arange(width, dtype=dtype), (1, 1, width))
        ys = ys + ops.zeros((1, 1, width), dtype)
        xs = xs + ops.zeros((1, height, 1), dtype)
        return _sample(images, ys, xs, self.interpolation)

    def get_config(self):
        return {**super().get_config(), "scale": list(self.scale), "interpolation": self.interpolation}


@keras.saving.register_keras_serializable(package="keras_cnn")
class RandomWarp(_RandomImageLayer):
    """Local (elastic) warping by a smooth random displacement field, one field per image.

    The "local warping" of the lectures (Ng, CNN course, week 2), in the spirit of the elastic
    distortions of Simard, Steinkraus & Platt, "Best Practices for Convolutional Neural Networks
    Applied to Visual Document Analysis" (ICDAR 2003). A ``grid_size x grid_size`` grid of random
    displacements ``U(-magnitude, magnitude) * (H, W)`` is upsampled bilinearly to ``H x W`` (a
    smooth field instead of Simard's Gaussian-blurred noise) and every output pixel samples the
    input bilinearly at its displaced position (edges clamped).

    Args:
        magnitude: largest displacement of a control point, as a fraction of the image side,
            in [0, 0.5]. Default 0.05.
        grid_size: control points per side (>= 2); fewer points give smoother, more global
            warps. Default 4.
        seed: int or None. Default None.

    Example:
        >>> RandomWarp(0.05, seed=1)(np.zeros((2, 28, 28, 1)), training=True).shape
        (2, 28, 28, 1)
    """

    def __init__(self, magnitude=0.05, grid_size=4, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.magnitude = _check_number("magnitude", magnitude, high=0.5)
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 2:
            raise ValueError(f"`grid_size` must be an int >= 2. Received: grid_size={grid_size!r}")
        self.grid_size = grid_size

    def build(self, input_shape):
        super().build(input_shape)
        _check_static_size(self, input_shape)

    def _augment(self, images):
        dtype = self.compute_dtype
        batch = self._batch_size(images)
        height, width = images.shape[1], images.shape[2]
        g = self.grid_size
        noise = keras.random.uniform((batch, g, g, 2), -1.0, 1.0, dtype=dtype, seed=self.seed_generator)
        scale = ops.convert_to_tensor([self.magnitude * height, self.magnitude * width], dtype=dtype)
        field = ops.image.resize(noise * scale, (height, width), interpolation="bilinear", antialias=False)
        field = ops.cast(field, dtype)
        ys = ops.reshape(ops.arange(height, dtype=dtype), (1, height, 1)) + field[..., 0]
        xs = ops.reshape(ops.arange(width, dtype=dtype), (1, 1, width)) + field[..., 1]
        return _sample(images, ys, xs, "bilinear")

    def get_config(self):
        return {**super().get_config(), "magnitude": self.magnitude, "grid_size": self.grid_size}


@keras.saving.register_keras_serializable(package="keras_cnn")
class RandomColorShift(_RandomImageLayer):
    """Colour shifting: a random offset per image and per channel added to R, G and B.

    The "colour shifting" of the lectures (Ng, CNN course, week 2: small offsets added to R, G, B;
    Krizhevsky et al., 2012, section 4.1 motivate it). Each image gets
    ``delta ~ U(-max_delta, max_delta)`` per channel, constant over its pixels; the result is
    clipped to ``value_range``. On a 1-channel image it is a per-image brightness offset.

    Args:
        max_delta: largest offset, in pixel units (0..255 data). Default 20.0.
        value_range: ``(low, high)`` to clip to, or None for no clipping. Default (0, 255).
        seed: int or None. Default None.

    Example:
        >>> RandomColorShift(20, seed=1)(np.full((2, 8, 8, 3), 128.0), training=True).shape
        (2, 8, 8, 3)
    """

    def __init__(self, max_delta=20.0, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_delta = _check_number("max_delta", max_delta)
        self.value_range = _check_value_range(value_range)

    def _augment(self, images):
        batch = self._batch_size(images)
        channels = images.shape[-1]
        delta = keras.random.uniform(
            (batch, 1, 1, channels), -self.max_delta, self.max_delta, dtype=self.compute_dtype, seed=self.seed_generator
        )
        return _clip(images + delta, self.value_range)

    def get_config(self):
        vr = None if self.value_range is None else list(self.value_range)
        return {**super().get_config(), "max_delta": self.max_delta, "value_range": vr}


@keras.saving.register_keras_serializable(package="keras_cnn")
class PCAColorAugmentation(_RandomImageLayer):
    """AlexNet's PCA colour augmentation ("fancy PCA").

    Krizhevsky, Sutskever & Hinton (2012), section 4.1: to every pixel of an image add
    ``sum_i alpha_i * lambda_i * p_i`` where ``p_i, lambda_i`` are the eigenvectors and
    eigenvalues of the 3x3 covariance of the RGB values over the training set and
    ``alpha_i ~ N(0, sigma)`` is drawn once per image (sigma = 0.1 in the paper). This changes the
    intensity and colour of the illumination, not the object's identity.

    Units: ``eigvals``/``eigvecs`` are those of pixels divided by ``pixel_scale`` (the usual
    convention: pixels in [0, 1], e.g. fb.resnet.torch's ImageNet values ``eigvals = [0.2175,
    0.0188, 0.0045]``); `keras_cnn.data.augment.compute_pca_stats` returns them in these units.
    The layer works on raw pixels, so the shift it adds is
    ``pixel_scale * eigvecs @ (alpha * eigvals)``, then clips to ``value_range``.

    Args:
        eigvals: the C eigenvalues (C = channels, 3 for RGB or 1 for grayscale), non-negative.
        eigvecs: C x C matrix whose *columns* are the eigenvectors (as ``numpy.linalg.eigh``).
        sigma: standard deviation of ``alpha``. Default 0.1.
        pixel_scale: pixel value that is 1.0 in the units of the statistics. Default 255.0.
        value_range: ``(low, high)`` to clip to, or None. Default (0, 255).
        seed: int or None. Default None.

    Example:
        >>> vals, vecs = compute_pca_stats(x_train)  # keras_cnn.data.augment
        >>> layer = PCAColorAugmentation(vals, vecs, sigma=0.1, seed=0)
    """

    def __init__(self, eigvals, eigvecs, sigma=0.1, pixel_scale=255.0, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        vals = np.asarray(eigvals, dtype="float64")
        vecs = np.asarray(eigvecs, dtype="float64")
        if vals.ndim != 1 or vals.size == 0 or not np.all(np.isfinite(vals)) or np.any(vals < 0):
            raise ValueError(
                f"`eigvals` must be a non-empty 1-D sequence of finite values >= 0. Received: eigvals={eigvals!r}"
            )
        if vecs.shape != (vals.size, vals.size) or not np.all(np.isfinite(vecs)):
            raise ValueError(
                f"`eigvecs` must be a {vals.size}x{vals.size} matrix (columns = eigenvectors) matching `eigvals`. "
                f"Received: eigvecs with shape {vecs.shape}"
            )
        self.eigvals = [float(v) for v in vals]
        self.eigvecs = [[float(v) for v in row] for row in vecs]
        self.sigma = _check_number("sigma", sigma)
        self.pixel_scale = _check_number("pixel_scale", pixel_scale, low=0.0, low_inclusive=False)
        self.value_range = _check_value_range(value_range)

    def build(self, input_shape):
        super().build(input_shape)
        if input_shape[-1] != len(self.eigvals):
            raise ValueError(
                f"PCAColorAugmentation has statistics for {len(self.eigvals)} channel(s) but the images have "
                f"{input_shape[-1]}. Compute them with compute_pca_stats() on the training images. "
                f"Received: input_shape={tuple(input_shape)}"
            )

    def _augment(self, images):
        dtype = self.compute_dtype
        batch = self._batch_size(images)
        c = len(self.eigvals)
        alpha = keras.random.normal((batch, c), mean=0.0, stddev=self.sigma, dtype=dtype, seed=self.seed_generator)
        vals = ops.convert_to_tensor(self.eigvals, dtype=dtype)
        vecs = ops.convert_to_tensor(self.eigvecs, dtype=dtype)
        # shift[b] = pixel_scale * sum_i alpha[b, i] * lambda_i * p_i   (p_i = vecs[:, i])
        shift = ops.matmul(alpha * vals, ops.transpose(vecs)) * self.pixel_scale
        return _clip(images + ops.reshape(shift, (-1, 1, 1, c)), self.value_range)

    def get_config(self):
        vr = None if self.value_range is None else list(self.value_range)
        return {
            **super().get_config(),
            "eigvals": list(self.eigvals),
            "eigvecs": [list(r) for r in self.eigvecs],
            "sigma": self.sigma,
            "pixel_scale": self.pixel_scale,
            "value_range": vr,
        }
