"""timm itself as a test peer: run a timm network on given images in a separate process.

The tests compare our loading of timm's ``safetensors`` files with timm's own PyTorch networks
(Wightman, PyTorch Image Models, https://github.com/huggingface/pytorch-image-models), loaded by
timm's own loader. torch and TensorFlow never share a process: :func:`run_timm` starts this file
as a script under ``sys.executable``, hands it a request (JSON) and the images (``.npy``), and
reads back the outputs (``.npz``) and a report (JSON). Any failure on timm's side (an unknown
model, a file timm refuses, a missing package) raises :class:`TimmPeerError` carrying timm's
exception type and message; a peer that runs past ``timeout`` is killed and reported the same
way. The peer runs with ``HF_HUB_OFFLINE=1``, so it can never reach the network, and exits on
its own if the test process dies (SIGTERM, Ctrl-C).

This module imports neither torch nor TensorFlow at import time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

__all__ = ["DEFAULT_TIMEOUT", "TimmPeerError", "run_timm"]

#: Seconds a peer may run (importing torch and timm takes a few seconds, VGG at 224 px a few more).
DEFAULT_TIMEOUT = 300.0
# Of the peer's stderr, how much a TimmPeerError quotes.
_STDERR_TAIL = 4000


class TimmPeerError(RuntimeError):
    """timm (or the peer process) failed.

    Attributes:
        model_name: the timm model name requested.
        stage: where it failed: "import" (torch/timm), "create" (``timm.create_model``, which
            also loads the weights file), "forward", "timeout" or "process" (the peer died
            without a report).
        exc_type: the name of the exception raised in the peer ("" for "timeout"/"process").
        timm_message: that exception's message (timm's/torch's own words).
    """

    def __init__(self, message, *, model_name, stage, exc_type="", timm_message=""):
        super().__init__(message)
        self.model_name = model_name
        self.stage = stage
        self.exc_type = exc_type
        self.timm_message = timm_message


def run_timm(name, path=None, images=None, *, timeout=DEFAULT_TIMEOUT, **create_kwargs):
    """Run timm's network ``name`` in a separate process; return its outputs and state dict.

    The peer calls ``timm.create_model(name, pretrained=True,
    pretrained_cfg_overlay=dict(file=path), **create_kwargs)`` (timm's own loading path for a
    local file, strict or not as timm decides for the model), then ``eval()`` and, under
    ``torch.no_grad()`` on the CPU: ``forward_features`` (for a model with ``aux_logits``:
    ``forward_preaux``, ``AuxLogits``, ``forward_postaux``), ``forward_head`` with and without
    ``pre_logits=True``. It checks that these pieces give what ``model(x)`` gives.

    Args:
        name: a timm model name, e.g. "resnet18.tv_in1k" or "inception_v3.tv_in1k".
        path: a ``safetensors`` (or any timm-loadable) weights file; None: no file, timm's
            random initialisation (``pretrained=False``), for names, shapes and counts.
        images: NHWC float32 array ``(N, H, W, C)``, transposed to NCHW for torch; None: no
            forward pass (only the state dict and the parameter count come back).
        timeout: seconds before the peer is killed (:class:`TimmPeerError`, stage "timeout").
        **create_kwargs: passed to ``timm.create_model``, e.g. ``aux_logits=True``;
            JSON-serialisable values only.

    Returns:
        A dict: "logits" ``(N, classes)``, "features" (pre-logits, ``(N, F)``) and, for a model
        with ``aux_logits``, "aux" (numpy float32; absent without ``images``); "param_count"
        (``sum(p.numel() for p in model.parameters())``); "state_dict" ``{key: shape tuple}``
        and "state_dict_dtypes" ``{key: numpy dtype name}`` of ``model.state_dict()`` in its
        order; "timm_version", "torch_version".

    Raises:
        ValueError: ``name``, ``images``, ``timeout`` or ``create_kwargs`` is not usable (the
            message names the argument and the value).
        FileNotFoundError: ``path`` does not exist.
        TimmPeerError: timm or the peer failed; the message holds timm's exception and message.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"run_timm: `name` must be a timm model name such as 'resnet18.tv_in1k'. Received: name={name!r}")
    if path is not None:
        path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"run_timm: `path` is not a file. Received: path={path!r}")
        if not path.endswith(".safetensors") and _looks_like_safetensors(path):
            raise ValueError(
                f"run_timm: `path` is a safetensors file without the '.safetensors' extension, and timm "
                f"picks its reader by the extension (torch.load would be tried). Received: path={path!r}; "
                f"rename or link it as '*.safetensors'.")
    if images is not None and not (isinstance(images, np.ndarray) and images.ndim == 4
                                   and images.dtype == np.float32):
        got = (f"array of shape {images.shape} and dtype {images.dtype}" if isinstance(images, np.ndarray)
               else type(images).__name__)
        raise ValueError(f"run_timm: `images` must be an NHWC float32 numpy array (N, H, W, C). Received: {got}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"run_timm: `timeout` must be a positive number of seconds. Received: timeout={timeout!r}")
    try:
        kwargs_json = json.dumps(create_kwargs)
    except TypeError as err:
        raise ValueError(f"run_timm: create kwargs must be JSON-serialisable. Received: {create_kwargs!r} ({err})") from None

    with tempfile.TemporaryDirectory(prefix="timm_peer_") as work:
        request = {"name": name, "path": path, "create_kwargs": json.loads(kwargs_json),
                   "images": None, "work": work}
        if images is not None:
            request["images"] = os.path.join(work, "images.npy")
            np.save(request["images"], images)
        with open(os.path.join(work, "request.json"), "w") as f:
            json.dump(request, f)
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
        command = [sys.executable, os.path.abspath(__file__), os.path.join(work, "request.json"), str(os.getpid())]
        try:
            # subprocess.run kills the peer on timeout and on any exception here (KeyboardInterrupt).
            proc = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise TimmPeerError(
                f"timm peer for {name!r} did not finish within {timeout:g} s and was killed. "
                f"stderr:\n{_tail(err.stderr)}", model_name=name, stage="timeout") from None
        error_file = os.path.join(work, "error.json")
        if os.path.exists(error_file):
            with open(error_file) as f:
                error = json.load(f)
            hint = ("\n(torch, torchvision and timm come with the `peer` extra: pip install -e \".[test,peer]\")"
                    if error["stage"] == "import" else "")
            raise TimmPeerError(
                f"timm failed at {error['stage']!r} for {name!r}: {error['type']}: {error['message']}{hint}\n"
                f"--- peer traceback ---\n{error['traceback']}",
                model_name=name, stage=error["stage"], exc_type=error["type"], timm_message=error["message"])
        report_file = os.path.join(work, "report.json")
        if proc.returncode != 0 or not os.path.exists(report_file):
            raise TimmPeerError(
                f"timm peer for {name!r} exited with code {proc.returncode} without a report. "
                f"stderr:\n{_tail(proc.stderr)}", model_name=name, stage="process")
        with open(report_file) as f:
            report = json.load(f)
        result = {
            "param_count": report["param_count"],
            "state_dict": {k: tuple(v) for k, v in report["state_dict"].items()},
            "state_dict_dtypes": report["state_dict_dtypes"],
            "timm_version": report["timm_version"],
            "torch_version": report["torch_version"],
        }
        if images is not None:
            with np.load(os.path.join(work, "outputs.npz")) as outputs:
                result.update({k: outputs[k] for k in outputs.files})
        return result


def _looks_like_safetensors(path):
    """A safetensors header: a little-endian u64 length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and 2 <= int.from_bytes(head[:8], "little") <= os.path.getsize(path) - 8 and head[8:] == b"{"


def _tail(text):
    text = text.decode(errors="replace") if isinstance(text, bytes) else (text or "")
    return text[-_STDERR_TAIL:] if text else "(empty)"


# --------------------------------------------------------------------------------------------
# The peer process.


def _exit_with_parent(parent):
    """Exit at once when the test process ``parent`` is gone (its child is then re-parented).

    ``parent`` comes from the caller, not from ``os.getppid()`` here: the caller may die before this runs.
    """
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def _peer_main(request_file, parent):
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    with open(request_file) as f:
        request = json.load(f)
    work = request["work"]
    stage = "import"
    try:
        import timm
        import torch

        stage = "create"
        kwargs = dict(request["create_kwargs"])
        if request["path"] is None:
            model = timm.create_model(request["name"], pretrained=False, **kwargs)
        else:
            model = timm.create_model(request["name"], pretrained=True,
                                      pretrained_cfg_overlay={"file": request["path"]}, **kwargs)
        model.eval()
        state = model.state_dict()
        report = {
            "param_count": int(sum(p.numel() for p in model.parameters())),
            "state_dict": {k: list(v.shape) for k, v in state.items()},
            "state_dict_dtypes": {k: str(v.detach().cpu().numpy().dtype) for k, v in state.items()},
            "timm_version": timm.__version__,
            "torch_version": torch.__version__,
        }
        if request["images"] is not None:
            stage = "forward"
            outputs = _forward(model, torch, np.load(request["images"]))
            np.savez(os.path.join(work, "outputs.npz"), **outputs)
    except BaseException as err:  # noqa: BLE001 -- every failure goes back to the test with timm's words
        with open(os.path.join(work, "error.json"), "w") as f:
            json.dump({"stage": stage, "type": type(err).__name__, "message": str(err),
                       "traceback": traceback.format_exc()}, f)
        return 1
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(report, f)
    return 0


def _forward(model, torch, images):
    """logits, pre-logits features and (with ``aux_logits``) aux logits of ``model`` on NHWC ``images``."""
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        aux = None
        if getattr(model, "aux_logits", False):
            if not (hasattr(model, "forward_preaux") and getattr(model, "AuxLogits", None) is not None):
                raise NotImplementedError(
                    f"{type(model).__name__} has aux_logits but not timm InceptionV3's forward_preaux/AuxLogits")
            pre = model.forward_preaux(x)
            aux = model.AuxLogits(pre)
            feats = model.forward_postaux(pre)
        else:
            feats = model.forward_features(x)
        logits = model.forward_head(feats)
        features = model.forward_head(feats, pre_logits=True)
        # The pieces must be what timm's own forward computes.
        whole = model(x)
        pairs = [("logits", logits, whole[0] if aux is not None else whole)]
        if aux is not None:
            pairs.append(("aux", aux, whole[1]))
        for what, piece, ref in pairs:
            scale = float(ref.abs().max()) or 1.0
            if piece.shape != ref.shape or float((piece - ref).abs().max()) > 1e-6 * scale:
                raise AssertionError(f"{what} from forward_features/forward_head differ from model(x)")
    outputs = {"logits": logits.numpy(), "features": features.numpy()}
    if aux is not None:
        outputs["aux"] = aux.numpy()
    return outputs


if __name__ == "__main__":
    sys.exit(_peer_main(sys.argv[1], int(sys.argv[2])))
