"""Learning curves and confusion matrix as PNG files (matplotlib, no display needed).

Figures are drawn on an Agg canvas (no global backend switch) and written atomically.
"""

from __future__ import annotations

import numpy as np

from keras_cnn._io import atomic_file
from keras_cnn.training.callbacks import accuracy_key


def _save(fig, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100, bbox_inches="tight")


def plot_learning_curves(history, path, *, title=None):
    """Loss and accuracy per epoch, training and validation, side by side.

    Args:
        history: ``{key: [per-epoch values]}`` as from Keras or `read_history` ("loss",
            "val_loss", "accuracy"/"predictions_accuracy", ...).
        path: the PNG to write.
        title: figure title.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = history.get("epoch")
    n = len(history.get("loss", []))
    xs = [e + 1 for e in epochs] if epochs and len(epochs) == n else list(range(1, n + 1))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if history.get(key):
            ax_loss.plot(xs[: len(history[key])], history[key], marker="o", label=label)
    acc = accuracy_key(history)
    if acc:
        for key, label in ((acc, "train"), ("val_" + acc, "validation")):
            if history.get(key):
                ax_acc.plot(xs[: len(history[key])], history[key], marker="o", label=label)
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return path


def plot_confusion_matrix(matrix, class_names, path, *, title=None, normalize=False):
    """The confusion matrix (rows: true class, columns: predicted class) with counts.

    Args:
        matrix: ``[n, n]`` counts.
        class_names: the ``n`` class names.
        path: the PNG to write.
        title: figure title.
        normalize: colour by row fraction instead of count.
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    size = min(max(4.0, 0.45 * n + 2), 30)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    image = ax.imshow(shown, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if n <= 30:
        ticks = np.arange(n)
        ax.set_xticks(ticks, labels=[str(c) for c in class_names], rotation=90 if n > 10 else 0)
        ax.set_yticks(ticks, labels=[str(c) for c in class_names])
        threshold = shown.max() / 2 if shown.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(int(matrix[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shown[i, j] > threshold else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    _save(fig, path)
    return path
