"""Image folders: scanning ``root/<class>/*`` or ``root/<split>/<class>/*`` and validating files.

Every file is decoded once, up front, with the same TensorFlow op the pipeline uses
(``tf.io.decode_image``), so that a corrupt or unreadable image is skipped (and counted) or
reported by name before training starts, never discovered in the middle of an epoch.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

#: File extensions read from image folders (the formats ``tf.io.decode_image`` decodes).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

#: Folder names recognised as splits (``val`` and ``validation`` are the same split).
SPLIT_DIRS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


@dataclass
class FolderSplit:
    """The image files of one split: paths, integer labels, and per-file shapes once validated."""

    paths: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    shapes: list = field(default_factory=list)


def _visible_dirs(path):
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _image_files(folder):
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    return found


def _scan_classes(folder, class_names=None, *, where):
    """List the class folders of ``folder``; with ``class_names`` given, map onto those labels."""
    classes = _visible_dirs(folder)
    if not classes:
        has_images = any(
            e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) for e in os.scandir(folder)
        )
        hint = " (it holds image files directly: put them in one folder per class)" if has_images else ""
        raise ValueError(
            f"`source` directory {where!r} has no class folders{hint}; expected root/<class>/*.jpg or "
            f"root/<split>/<class>/*.jpg. Received: source={where!r}"
        )
    if class_names is None:
        class_names = classes
    else:
        unknown = sorted(set(classes) - set(class_names))
        if unknown:
            raise ValueError(
                f"`source` split folder {where!r} has class folders {unknown} that the train split lacks "
                f"(train classes: {class_names}). Received: source={where!r}"
            )
    split = FolderSplit()
    for name in classes:
        files = _image_files(os.path.join(folder, name))
        if not files:
            raise ValueError(
                f"`source` class folder {os.path.join(where, name)!r} holds no image files "
                f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add its images. Received: source={where!r}"
            )
        split.paths.extend(files)
        split.labels.extend([class_names.index(name)] * len(files))
    return class_names, split


def scan_directory(root):
    """Return ``(class_names, {split: FolderSplit})`` for an image folder.

    The split layout is used when ``root`` holds a ``train`` folder and only split folders
    (``train``, ``val``/``validation``, ``test``); otherwise every sub-folder is a class.

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a directory.
        ValueError: an empty directory, no class folders, a class folder without image files
            (named), both ``val`` and ``validation``, or classes in val/test that train lacks.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"`source` must be an existing directory of images. Received: source={root!r}")
    entries = [e for e in os.listdir(root) if not e.startswith(".")]
    if not entries:
        raise ValueError(f"`source` directory is empty. Received: source={root!r}")
    subdirs = _visible_dirs(root)
    splits = {}
    if "train" in subdirs and all(d in SPLIT_DIRS for d in subdirs):
        if "val" in subdirs and "validation" in subdirs:
            raise ValueError(
                f"`source` has both 'val' and 'validation' folders; keep one. Received: source={root!r}"
            )
        class_names, splits["train"] = _scan_classes(os.path.join(root, "train"), where=os.path.join(root, "train"))
        for d in subdirs:
            if d != "train":
                where = os.path.join(root, d)
                _, splits[SPLIT_DIRS[d]] = _scan_classes(where, class_names, where=where)
    else:
        class_names, splits["train"] = _scan_classes(root, where=root)
    for name, split in splits.items():
        if not split.paths:
            where = root if len(splits) == 1 else os.path.join(root, name)
            raise ValueError(
                f"`source` has no image files ({', '.join(IMAGE_EXTENSIONS)}) in {where!r}. Received: source={root!r}"
            )
    return class_names, splits


def _probe(path):
    """Decode ``path`` once; return ``(shape, None)`` or ``(None, error message)``."""
    import tensorflow as tf

    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if not data:
            return None, "empty file"
        image = tf.io.decode_image(data, channels=0, expand_animations=False)
        shape = tuple(int(s) for s in image.shape)
        if len(shape) != 3 or shape[0] == 0 or shape[1] == 0 or shape[2] not in (1, 2, 3, 4):
            return None, f"unexpected decoded shape {shape}"
        return shape, None
    except Exception as error:  # noqa: BLE001 - any failure means "unreadable", reported by name
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, f"{type(error).__name__}: {message}"


def validate_files(split, *, on_corrupt="skip", workers=None):
    """Decode every file of ``split`` once; drop (or raise on) unreadable ones.

    Returns:
        ``(valid FolderSplit with shapes, skipped paths)``.

    Raises:
        ValueError: with ``on_corrupt="error"``, naming the first unreadable file.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_probe, split.paths))
    valid, skipped = FolderSplit(), []
    for path, label, (shape, error) in zip(split.paths, split.labels, results):
        if error is not None:
            if on_corrupt == "error":
                raise ValueError(
                    f"corrupt or unreadable image {path!r} ({error}); pass on_corrupt='skip' to skip such files. "
                    "Received: on_corrupt='error'"
                )
            skipped.append(path)
            continue
        valid.paths.append(path)
        valid.labels.append(label)
        valid.shapes.append(shape)
    return valid, skipped
