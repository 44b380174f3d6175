"""Image files and batches at the serving boundary: reading, checking, decoding, encoding.

Decoding and resizing use the very ops of the exported ``serving_bytes`` signature
(``tf.io.decode_image`` then bilinear ``tf.image.resize``), so a client that decodes locally feeds
the model what the server would have fed it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

# Formats tf.io.decode_image understands, by their magic bytes.
_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
IMAGE_FORMATS = ("jpeg", "png", "gif", "bmp")


def sniff_image_format(data: bytes) -> str | None:
    """"jpeg", "png", "gif" or "bmp" from the leading bytes, or None."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


@dataclasses.dataclass
class ImageItem:
    """One input image at the serving boundary.

    Attributes:
        name: the file name (or ``<bytes #i>``), as given.
        data: the encoded bytes, or None when the file could not be read.
        error: why this image cannot be predicted (None: fine so far).
    """

    name: str
    data: bytes | None
    error: str | None = None


def read_image_items(paths, *, arg="images") -> list[ImageItem]:
    """Read encoded images one by one; a bad file becomes an item with ``error`` set.

    Args:
        paths: image file paths (str or PathLike), ``(name, bytes)`` pairs, or raw bytes.
        arg: argument name used in error messages.

    Returns:
        One `ImageItem` per input, in input order. Missing files, directories, unreadable
        files and files that are not JPEG/PNG/GIF/BMP get an ``error``; the others ``data``.

    Raises:
        ValueError: no images at all.
    """
    if paths is None or isinstance(paths, (str, bytes, os.PathLike)):
        paths = [] if paths is None else [paths]
    items = list(paths)
    if not items:
        raise ValueError(f"`{arg}` must name at least one image file. Received: {arg}=[]")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, tuple):
            name, data = item
        elif isinstance(item, (bytes, bytearray)):
            name, data = f"<bytes #{i}>", bytes(item)
        else:
            path = Path(item)
            name = str(path)
            if path.is_dir():
                out.append(ImageItem(name, None, "is a directory, not an image file"))
                continue
            if not path.exists():
                out.append(ImageItem(name, None, "no such file"))
                continue
            try:
                data = path.read_bytes()
            except OSError as err:
                out.append(ImageItem(name, None, f"cannot be read ({err.strerror or err})"))
                continue
        if sniff_image_format(data) is None:
            formats = ", ".join(f.upper() for f in IMAGE_FORMATS)
            reason = "empty file" if not data else "not an image"
            out.append(ImageItem(name, None, f"{reason} (expected {formats})"))
            continue
        out.append(ImageItem(name, data))
    return out


def decode_item(item, height=None, width=None, channels=0):
    """Decode one `ImageItem` (and resize it when ``height``/``width`` are given), as serving does.

    Returns:
        float32 ``[height, width, channels]`` raw pixels, or None after setting ``item.error``
        when the bytes cannot be decoded (truncated or corrupt file).
    """
    import tensorflow as tf

    if item.error:
        return None
    try:
        if channels:
            image = tf_decode_image(tf.constant(item.data), channels)
        else:
            image = tf.io.decode_image(item.data, expand_animations=False)
        image = tf.cast(image, tf.float32)
        if height is not None:
            image = tf.image.resize(image, (height, width))
        return image.numpy()
    except tf.errors.OpError as err:  # corrupt, truncated, too large, ...: this image only
        reason = op_error_reason(err)
        item.error = "could not be decoded as an image" + (f" ({reason})" if reason else "")
        return None


def op_error_reason(err):
    """The first line of a TensorFlow op error without TensorFlow's own wrapping: the
    ``{{function_node __wrapped__DecodeImage_device_...}}`` prefix and the ``[Op:DecodeImage]``
    suffix. E.g. "Invalid PNG. Failed to initialize decoder"."""
    lines = (getattr(err, "message", "") or str(err)).strip().splitlines()
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", lines[0] if lines else "")
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", text).strip().rstrip(".")


def tf_decode_image(data, channels):
    """Decode one encoded image (a scalar string tensor) to uint8 ``[H, W, channels]``.

    Used inside the exported ``serving_bytes`` signature and by local clients. PNG and JPEG are
    decoded straight to 1 or 3 ``channels``; GIF and BMP (whose decoders only give their own
    channel count), and every format for 4 channels, are decoded natively and converted: RGB -> gray with ``tf.image.rgb_to_grayscale``
    weights, gray -> RGB by repetition, alpha dropped or added as opaque.
    """
    import tensorflow as tf

    def native():
        image = tf.io.decode_image(data, channels=0, expand_animations=False)
        return _convert_channels(image, channels)

    def direct():
        return tf.io.decode_image(data, channels=channels, expand_animations=False)

    if channels == 4:  # JPEG cannot decode to 4 channels: add the alpha ourselves
        image = native()
    else:
        is_gif_or_bmp = tf.logical_or(
            tf.equal(tf.strings.substr(data, 0, 3), b"GIF"), tf.equal(tf.strings.substr(data, 0, 2), b"BM")
        )
        image = tf.cond(is_gif_or_bmp, native, direct)
    return tf.ensure_shape(image, [None, None, channels])


def _convert_channels(image, channels):
    import tensorflow as tf

    n = tf.shape(image)[-1]

    def rgb():
        return tf.cond(n >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))

    if channels == 1:
        def gray_from_rgb():
            colour = tf.ensure_shape(tf.cast(image[..., :3], tf.float32), [None, None, 3])
            return tf.cast(tf.round(tf.image.rgb_to_grayscale(colour)), tf.uint8)

        return tf.cond(n >= 3, gray_from_rgb, lambda: image[..., :1])
    if channels == 3:
        return rgb()
    alpha = tf.cond(n == 4, lambda: image[..., 3:4], lambda: tf.fill(tf.concat([tf.shape(image)[:2], [1]], 0),
                                                                       tf.constant(255, tf.uint8)))
    return tf.concat([rgb(), alpha], axis=-1)


def check_image_batch(arg, batch, shape) -> np.ndarray:
    """Return ``batch`` as float32 ``[N, H, W, C]`` (N >= 1) matching ``shape`` = (H, W, C).

    ``None`` entries in ``shape`` accept any size.
    """
    try:
        array = np.asarray(batch, dtype="float32")
    except (TypeError, ValueError):
        raise ValueError(f"`{arg}` must be a numeric image batch [N, H, W, C]. Received: {arg} of type "
                         f"{type(batch).__name__}") from None
    expected = "[N, " + ", ".join("?" if s is None else str(s) for s in shape) + "]"
    if array.ndim != 4 or any(s is not None and s != a for s, a in zip(shape, array.shape[1:])):
        raise ValueError(f"`{arg}` must have shape {expected}. Received: {arg} with shape {tuple(array.shape)}")
    if array.shape[0] == 0:
        raise ValueError(f"`{arg}` must hold at least one image. Received: {arg} with shape {tuple(array.shape)}")
    return array


def encode_png(image) -> bytes:
    """PNG bytes of one ``[H, W, C]`` image of 0..255 pixels (values are rounded and clipped)."""
    import tensorflow as tf

    pixels = np.clip(np.rint(np.asarray(image, dtype="float32")), 0, 255).astype("uint8")
    return tf.io.encode_png(pixels).numpy()
