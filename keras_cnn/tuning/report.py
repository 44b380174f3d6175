"""The results of a search: a table of trials and a plot of accuracy against compute.

Every trial is one row: its hyper-parameters, best validation accuracy, parameters and
multiply-accumulates (MACs, per example, of the inference model), the tuner that ran it and
its status (COMPLETED, REJECTED for over-budget candidates that were never trained, FAILED,
...). `write_report` writes it as ``results.csv`` (one column per hyper-parameter),
``results.txt`` (the aligned table the CLI prints) and ``accuracy_vs_macs.png`` (validation
accuracy against MACs, log scale, with the Pareto front and the MAC budget), all atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path

from keras_cnn._io import atomic_file, atomic_write_text

RESULTS_CSV = "results.csv"
RESULTS_TXT = "results.txt"
RESULTS_PNG = "accuracy_vs_macs.png"

_FIXED_COLUMNS = ("trial", "tuner", "status", "val_accuracy", "val_loss", "params", "macs", "seconds", "message")


@dataclasses.dataclass(frozen=True)
class AccuracyFloor:
    """The validation accuracy a search's best trial must beat to be exported, in examples.

    Accuracies are compared as counts of correct validation examples: a float32 accuracy of
    6/60 equals a majority rate of 6/60 (no float rounding decides), and beating the floor
    means at least one more correct example than ``rate * examples``.

    Attributes:
        rate: the floor as an accuracy (default: the majority-class rate of the split).
        examples: validation examples the accuracies are measured on.
        needed: correct examples needed to beat the floor (``floor(rate * examples) + 1``).
        source: "the majority-class rate" or "floor" (given by the caller).
    """

    rate: float
    examples: int
    needed: int
    source: str

    def correct(self, accuracy):
        """Correct validation examples of an accuracy measured on this split (None if unknown)."""
        if accuracy is None or not math.isfinite(float(accuracy)):
            return None
        return int(round(float(accuracy) * self.examples))

    def beaten_by(self, accuracy):
        """Whether ``accuracy`` has at least `needed` correct examples."""
        correct = self.correct(accuracy)
        return correct is not None and correct >= self.needed

    def to_dict(self, accuracy):
        """The figures for best.json: the floor, what beating it takes, what ``accuracy`` has."""
        return {"floor": self.rate, "floor_source": self.source, "val_examples": self.examples,
                "val_correct_needed": self.needed, "val_correct": self.correct(accuracy),
                "below_floor": not self.beaten_by(accuracy)}


def label_counts(dataset):
    """Examples per label of a batched ``(images, labels)`` dataset, as an int64 array."""
    import numpy as np

    counts = np.zeros(0, "int64")
    for _, labels in dataset.as_numpy_iterator():
        found = np.bincount(np.asarray(labels).reshape(-1).astype("int64"))
        if len(found) > len(counts):
            counts = np.pad(counts, (0, len(found) - len(counts)))
        counts[: len(found)] += found
    return counts


def majority_rate(dataset):
    """The fraction of the most frequent label in a batched ``(images, labels)`` dataset."""
    counts = label_counts(dataset)
    return float(counts.max() / counts.sum()) if counts.sum() else 0.0


def accuracy_floor(dataset, floor=None):
    """The `AccuracyFloor` of a validation ``dataset``.

    Args:
        dataset: the batched ``(images, labels)`` split the best trial's accuracy was measured on.
        floor: an accuracy in [0, 1) to beat, or None: the majority-class rate (what always
            answering the most frequent class scores), so that beating it takes one more
            correct example than the majority class has.
    """
    counts = label_counts(dataset)
    examples = int(counts.sum())
    if floor is None:
        majority = int(counts.max()) if examples else 0
        return AccuracyFloor(majority / examples if examples else 0.0, examples, majority + 1,
                             "the majority-class rate")
    # The largest count not above the floor, with a tolerance for a rate given as a decimal.
    at_floor = math.floor(float(floor) * examples + 1e-6)
    return AccuracyFloor(float(floor), examples, at_floor + 1, "floor")


@dataclasses.dataclass(frozen=True)
class SearchSummary:
    """How a search ended: its trials and why it stopped.

    Attributes:
        completed: trials trained to the end.
        failed: trials that crashed (FAILED / INVALID, budget rejections excluded).
        rejected: candidates rejected before training for the compute budget.
        max_trials: the trial count asked for (None: no limit).
        max_rejected: the most budget rejections allowed on top of ``max_trials``.
        cause: "max_trials" (the trials asked for ran), "max_rejected" (the cap on rejections
            was reached first) or "exhausted" (the tuner had no new candidate).
    """

    completed: int
    failed: int
    rejected: int
    max_trials: int | None
    max_rejected: int | None
    cause: str

    @property
    def short(self):
        """Whether fewer trials ran than ``max_trials`` asked for."""
        return self.cause != "max_trials"

    def describe(self):
        """One sentence: the counts and the cause."""
        trained = self.completed + self.failed
        counts = (f"{trained} trial{'s' if trained != 1 else ''} trained ({self.completed} completed, "
                  f"{self.failed} failed), {self.rejected} candidate{'s' if self.rejected != 1 else ''} "
                  "rejected over the compute budget")
        if self.cause == "max_trials":
            return f"{counts}; ended: max_trials={self.max_trials} trials ran"
        if self.cause == "max_rejected":
            return (f"{counts}; ended before max_trials={self.max_trials}: the cap of max_rejected="
                    f"{self.max_rejected} rejections was reached (few candidates of this search space fit the "
                    "budget: raise `max_macs` / `max_params`, narrow `search_space` to cheaper choices, or raise "
                    "`max_rejected`)")
        limit = "" if self.max_trials is None else f" before max_trials={self.max_trials}"
        return f"{counts}; ended{limit}: the tuner had no new candidate (search space exhausted)"

    def to_dict(self):
        """A JSON-friendly dict, with the sentence."""
        return {**dataclasses.asdict(self), "summary": self.describe()}


def trial_order(trial_id):
    """Sort key of trial ids: numerically ("9" before "10", whatever their zero-padding)."""
    tid = str(trial_id)
    return (0, int(tid), tid) if tid.isdigit() else (1, 0, tid)


def format_count(value):
    """12_345_678 -> "12.3M"; None -> "-"."""
    if value is None:
        return "-"
    value = float(value)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{int(value)}"


def _format_value(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _hp_names(records):
    names = []
    for rec in records:
        for name in rec.hyperparameters:
            if name not in names:
                names.append(name)
    return names


def format_table(records, *, max_hp_width=60, max_rejected_rows=None):
    """The trials as an aligned plain-text table (best first among completed, then the rest).

    Args:
        records: `TrialRecord`s.
        max_hp_width: truncate the hyper-parameter column to this many characters (0: never).
        max_rejected_rows: show at most this many candidates rejected for the budget, then one
            line counting the others (None: all of them).

    Returns:
        The table as a string (no trailing newline).
    """
    rows = []
    shown = sort_records(records)
    hidden = 0
    if max_rejected_rows is not None:
        rejected = [r for r in shown if r.status == "REJECTED"]
        hidden = max(0, len(rejected) - max_rejected_rows)
        dropped = {id(r) for r in rejected[max_rejected_rows:]}
        shown = [r for r in shown if id(r) not in dropped]
    for rec in shown:
        hps = ", ".join(f"{k}={_format_value(v)}" for k, v in rec.hyperparameters.items() if not k.startswith("tuner/"))
        if max_hp_width and len(hps) > max_hp_width:
            hps = hps[: max_hp_width - 3] + "..."
        rows.append(
            (
                rec.trial_id,
                rec.tuner_id or "-",
                rec.status,
                "-" if rec.val_accuracy is None else f"{rec.val_accuracy:.4f}",
                format_count(rec.params),
                format_count(rec.macs),
                hps,
            )
        )
    header = ("trial", "tuner", "status", "val_acc", "params", "MACs", "hyper-parameters")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5}

    def line(cells):
        return "  ".join(
            (str(c).rjust(w) if i in right else str(c).ljust(w)) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    if hidden:
        out.append(f"... and {hidden} more candidates REJECTED over the compute budget (all in {RESULTS_CSV})")
    return "\n".join(out)


def sort_records(records):
    """Completed trials by decreasing validation accuracy, then the others by trial id."""
    done = [r for r in records if r.val_accuracy is not None]
    rest = [r for r in records if r.val_accuracy is None]
    done.sort(key=lambda r: (-r.val_accuracy, r.macs if r.macs is not None else math.inf))
    rest.sort(key=lambda r: trial_order(r.trial_id))
    return done + rest


def records_to_csv(records):
    """The trials as CSV text: fixed columns then one column per hyper-parameter."""
    names = _hp_names(records)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*_FIXED_COLUMNS, *names])
    for rec in sorted(records, key=lambda r: trial_order(r.trial_id)):
        writer.writerow(
            [
                rec.trial_id,
                rec.tuner_id or "",
                rec.status,
                "" if rec.val_accuracy is None else rec.val_accuracy,
                "" if rec.val_loss is None else rec.val_loss,
                "" if rec.params is None else rec.params,
                "" if rec.macs is None else rec.macs,
                "" if rec.seconds is None else round(rec.seconds, 2),
                rec.message or "",
                *[_csv_value(rec.hyperparameters[n]) if n in rec.hyperparameters else "" for n in names],
            ]
        )
    return buf.getvalue()


def _csv_value(value):
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (str, int, float)):
        return value
    return json.dumps(value)


def pareto_front(records):
    """Completed trials not beaten by another with fewer (or equal) MACs and higher accuracy,
    in increasing MACs."""
    pts = sorted(
        (r for r in records if r.val_accuracy is not None and r.macs is not None),
        key=lambda r: (r.macs, -r.val_accuracy),
    )
    front, best = [], -math.inf
    for r in pts:
        if r.val_accuracy > best:
            front.append(r)
            best = r.val_accuracy
    return front


def plot_accuracy_vs_macs(records, path, *, max_macs=None, title=None):
    """Scatter of validation accuracy against MACs (log scale), as a PNG.

    Completed trials are points (the best one starred, the Pareto front joined); candidates
    rejected for the budget are crosses on the bottom axis at their MACs; ``max_macs`` is a
    dashed vertical line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    done = [r for r in records if r.val_accuracy is not None and r.macs]
    rejected = [r for r in records if r.status == "REJECTED" and r.macs]
    if done:
        ax.scatter([r.macs for r in done], [r.val_accuracy for r in done], label="trials", zorder=3)
        for r in done:
            ax.annotate(r.trial_id, (r.macs, r.val_accuracy), textcoords="offset points", xytext=(4, 4), fontsize=7)
        front = pareto_front(done)
        ax.plot([r.macs for r in front], [r.val_accuracy for r in front], "--", color="tab:green", label="Pareto front")
        best = max(done, key=lambda r: r.val_accuracy)
        ax.scatter([best.macs], [best.val_accuracy], marker="*", s=200, color="tab:orange", label="best", zorder=4)
    if rejected:
        ax.scatter(
            [r.macs for r in rejected], [0.0] * len(rejected), marker="x", color="tab:red",
            label="rejected (over budget)", zorder=3,
        )
    if max_macs:
        ax.axvline(max_macs, linestyle=":", color="tab:red", label="MAC budget")
    if done or rejected:
        ax.set_xscale("log")
    ax.set_xlabel("multiply-accumulates per example (MACs)")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "Accuracy against compute")
    if done or rejected or max_macs:
        ax.legend(loc="best", fontsize=8)
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100, bbox_inches="tight")
    return Path(path)


def write_report(records, directory, *, max_macs=None, title=None):
    """Write results.csv, results.txt and accuracy_vs_macs.png into ``directory``.

    Returns:
        ``{"csv": Path, "table": Path, "plot": Path}``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / RESULTS_CSV, records_to_csv(records))
    atomic_write_text(directory / RESULTS_TXT, format_table(records, max_hp_width=0) + "\n")
    plot = plot_accuracy_vs_macs(records, directory / RESULTS_PNG, max_macs=max_macs, title=title)
    return {"csv": directory / RESULTS_CSV, "table": directory / RESULTS_TXT, "plot": plot}
