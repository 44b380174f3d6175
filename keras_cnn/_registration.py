"""Register keras_cnn's serializable classes with Keras whenever Keras is loaded.

Why: ``keras.saving.load_model`` finds custom classes (``keras_cnn>ConvBN``, the learning-rate
schedule, ...) only once the modules defining them have run. The old ``keras_cnn/__init__`` imported
them eagerly, which made ``import keras_cnn`` (and so every ``keras-cnn`` command, ``--help``
included) import TensorFlow: 6-20 s and CUDA-probe lines on stderr. Now ``import keras_cnn`` stays
cheap and the classes are registered *with* Keras instead:

* Keras already imported: `install` registers them at once.
* Keras not yet imported: `install` puts a `importlib.abc.MetaPathFinder` on ``sys.meta_path``
  that wraps the loader of ``keras``; the moment ``keras`` has finished importing, the classes are
  registered. If ``keras`` was imported by a keras_cnn module that is itself still executing (say
  ``keras_cnn.layers.conv`` at its ``import keras`` line), registering right then would import the
  half-built module again (a circular-import error), so the finder also tracks keras_cnn's own
  module executions and registers when the outermost one has finished. Once registered, the finder
  removes itself.

The only public import machinery used is ``importlib.abc`` / ``importlib.machinery``; no private
Keras or importlib names. `register_now` is the explicit form (used by `keras_cnn.load_model`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading

# The modules whose import registers every `keras.saving.register_keras_serializable` class of the
# package: the layers, the model families (AlexNet's LRN layer; `keras_cnn.models` itself imports
# them only on first use) and the training recipes (EpochSchedule). tests/test_cli_startup.py
# checks this against every `register_keras_serializable` in the sources. Last, `keras_cnn.weights`,
# whose import installs the weights loader the model builders call (the models sit below it and do
# not import it): every builder needs Keras, so the loader is in place before any builder runs.
REGISTERING_MODULES = ("keras_cnn.layers", "keras_cnn.models", "keras_cnn.training.recipes", "keras_cnn.weights")


def _registering_modules():
    from keras_cnn.models import FAMILY_MODULES

    families = tuple(f"keras_cnn.models.{name}" for name in FAMILY_MODULES)
    return REGISTERING_MODULES[:2] + families + REGISTERING_MODULES[2:]

_lock = threading.RLock()
_state = {"registered": False, "pending": False, "depth": 0}


def register_now():
    """Import the modules that register keras_cnn's classes with Keras (imports Keras)."""
    with _lock:
        if _state["registered"]:
            return
        _state["registered"] = True  # set first: the imports below re-enter the finder
        _state["pending"] = False
        _uninstall()
    try:
        for name in _registering_modules():
            importlib.import_module(name)
    except BaseException:
        with _lock:
            _state["registered"] = False
        raise


def is_registered():
    """True once keras_cnn's classes are registered with Keras."""
    return _state["registered"]


def install():
    """Register now if Keras is loaded, else as soon as it is (idempotent)."""
    if _state["registered"]:
        return
    if "keras" in sys.modules and getattr(sys.modules["keras"], "saving", None) is not None:
        register_now()
        return
    with _lock:
        if not any(isinstance(f, _KerasWatcher) for f in sys.meta_path):
            sys.meta_path.insert(0, _KerasWatcher())


def _uninstall():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _KerasWatcher)]


def _after_keras():
    with _lock:
        if _state["registered"]:
            return
        if _state["depth"] > 0:  # a keras_cnn module is mid-execution: wait for it
            _state["pending"] = True
            return
    register_now()


def _after_own_module():
    with _lock:
        run = _state["pending"] and _state["depth"] == 0 and not _state["registered"]
    if run:
        register_now()


class _Loader(importlib.abc.Loader):
    """Delegates to the real loader; runs ``after`` once the module has executed."""

    def __init__(self, loader, own):
        self._loader = loader
        self._own = own

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self._own:
            with _lock:
                _state["depth"] += 1
            try:
                self._loader.exec_module(module)
            finally:
                with _lock:
                    _state["depth"] -= 1
            _after_own_module()
        else:
            self._loader.exec_module(module)
            _after_keras()

    def __getattr__(self, name):  # get_source, get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _KerasWatcher(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader the other finders return for keras / keras_cnn.*."""

    def find_spec(self, fullname, path, target=None):
        own = fullname.startswith("keras_cnn.")
        if fullname != "keras" and not own:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, own)
        return spec
