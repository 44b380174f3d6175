"""The one run lifecycle of keras_cnn: check -> open -> prepare -> engine -> finish.

Every run that writes a run directory goes through `Lifecycle.execute`: `keras_cnn.training.train`
(the ``fit`` engine, strategies "default" and "mirrored"), the multi-worker loop
(`keras_cnn.training.distributed`), ``keras-cnn transfer`` (`keras_cnn.training.transfer.run_transfer`)
and a tuning search (`keras_cnn.tuning.tune`)::

    RunConfig / TransferConfig / TuneConfig        (frozen: nothing changes them after the check)
      |
    check      every argument, before TensorFlow runs anything -> the checked facts
      |
    open       lock the run directory (a second process is refused, naming the holder's pid);
      |        its state for this run's fingerprint (`keras_cnn.training.rundir`):
      |          finished   -> `finished`: the stored result; nothing trained, nothing exported
      |          other run  -> refused, naming the fields that differ (or files without config.json)
      |          new/resume -> go on
    prepare    data (two classes or more, no empty split), network, optimizer
      |
    begin      config.json (fingerprint, run id): the directory now holds this run
      |
    engine     fit / the multi-worker loop / fine_tune's two phases / the search; per-epoch checkpoints
      |
    finish     evaluate, model.keras, plots, export; then `complete`: metrics.json (written last: the
               run is finished), checkpoints dropped, report.html (train, transfer), README.txt

A kind of run subclasses `Lifecycle` and implements its steps; `execute` runs them in order,
holding the run directory's lock from ``open`` to the end of ``finish``.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from keras_cnn.training import rundir

logger = logging.getLogger(__name__)


class Lifecycle:
    """One run of one kind. Subclasses set ``run_dir`` and ``resume`` and implement the steps."""

    #: The file a finished run writes last (its stored result).
    result_file = rundir.METRICS_FILE

    run_dir: Path
    resume: bool = True
    #: The argument that names the run directory, in messages.
    dir_arg = "out_dir"

    # ------------------------------------------------------------------ the steps of each kind
    def fingerprint(self):
        """What determines the result: a rerun with another one is refused (`rundir.differences`)."""
        raise NotImplementedError

    def finished_digest(self):
        """The digest a finished run's result file holds (default: the fingerprint's)."""
        return None

    def finished(self, state):
        """The stored result of a finished run (``state.metrics`` holds its result file)."""
        raise NotImplementedError

    def prepare(self, state):
        """Data, network, optimizer -> what the engine needs."""
        raise NotImplementedError

    def begin(self, prepared, state):
        """Write ``config.json`` (the run now holds this directory)."""
        raise NotImplementedError

    def engine(self, prepared, state):
        """Train -> what `finish` needs."""
        raise NotImplementedError

    def finish(self, prepared, outcome):
        """Evaluate, save, export; end with `complete` -> the run's result."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------- the driver
    def open(self, stack):
        """Lock the run directory (for the rest of the run) -> its `rundir.RunState`."""
        stack.enter_context(rundir.lock_run_dir(self.run_dir, arg=self.dir_arg))
        return rundir.inspect_run_dir(
            self.run_dir, self.fingerprint(), resume=self.resume, result_file=self.result_file,
            finished_digest=self.finished_digest(), arg=self.dir_arg,
        )

    def execute(self):
        """open -> (finished: the stored result) -> prepare -> begin -> engine -> finish."""
        with contextlib.ExitStack() as stack:
            state = self.open(stack)
            if state.status == "finished":
                logger.info("%s: this run (same settings and data) finished before; nothing was trained or "
                            "exported again", self.run_dir)
                return self.finished(state)
            prepared = self.prepare(state)
            self.begin(prepared, state)
            outcome = self.engine(prepared, state)
            return self.finish(prepared, outcome)


def complete(run_dir, result, *, title, keep_checkpoints, result_file=rundir.METRICS_FILE, report=None):
    """The end of every finish: the result file written last (the run is finished), the
    checkpoints dropped unless ``keep_checkpoints``, ``report.html`` when ``report`` is given
    (``{"model": ..., "data": ...}`` still in memory; a failure is a logged warning and the run
    stays finished), ``README.txt``."""
    from keras_cnn._io import atomic_write_json

    run_dir = Path(run_dir)
    atomic_write_json(run_dir / result_file, result)
    if not keep_checkpoints and rundir.drop_checkpoints(run_dir):
        logger.info("%s: run finished; its checkpoints were removed (--keep-checkpoints, or "
                    "keep_checkpoints=True in Python, keeps them)", run_dir)
    if report is not None:
        from keras_cnn.explain import write_report_or_warn

        write_report_or_warn(run_dir, **report)
    rundir.write_readme(run_dir, title=title)
