import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Seed and clear Keras state around every test so tests do not depend on order."""
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)


def assert_keras_roundtrip(model, x, tmp_path, atol=1e-6):
    """Save ``model`` to .keras, load it back, and assert identical outputs on ``x``."""
    path = tmp_path / "roundtrip.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    a = model(x, training=False)
    b = loaded(x, training=False)
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=atol)
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol)
    return loaded
