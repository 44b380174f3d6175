"""Look inside a model: Grad-CAM heat maps and the self-contained report of a training run.

`grad_cam` / `overlay` (Selvaraju et al., 2017) in `keras_cnn.explain.gradcam`; the run report
(``report.html``) in `keras_cnn.explain.report`.
"""

from keras_cnn.explain.gradcam import GradCam, grad_cam, grad_cam_details, overlay, panel, resolve_layer

__all__ = ["GradCam", "grad_cam", "grad_cam_details", "overlay", "panel", "resolve_layer", "write_report", "write_report_or_warn"]


def write_report(run_dir, **kwargs):
    """Write ``run_dir/report.html`` (see `keras_cnn.explain.report.write_report`)."""
    from keras_cnn.explain.report import write_report as write

    return write(run_dir, **kwargs)


def write_report_or_warn(run_dir, **kwargs):
    """`write_report`, a failure logged as a warning (see `keras_cnn.explain.report.write_report_or_warn`)."""
    from keras_cnn.explain.report import write_report_or_warn as write

    return write(run_dir, **kwargs)
