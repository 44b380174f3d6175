"""Recipes as data: paper values pinned, overrides, schedules, optimizers (fast, no training)."""

import math

import keras
import numpy as np
import pytest

from keras_cnn.training import (
    EpochSchedule,
    Recipe,
    build_optimizer,
    build_schedule,
    get_recipe,
    list_recipes,
)


def test_inception_v3_recipe_is_the_papers():
    # Szegedy et al., 2016, section 8.
    r = get_recipe("inception_v3")
    assert r.optimizer == "rmsprop"
    assert r.optimizer_kwargs == {"rho": 0.9, "momentum": 0.9, "epsilon": 1.0}
    assert r.learning_rate == 0.045
    assert (r.schedule, r.decay_rate, r.decay_epochs) == ("step", 0.94, 2)
    assert r.label_smoothing == 0.1
    assert r.clipnorm == 2.0
    assert r.batch_size == 32
    assert r.aux_loss_weight > 0


def test_googlenet_and_inception_v2_recipes():
    # Szegedy et al., 2015: SGD momentum 0.9, lr -4% every 8 epochs, aux loss weight 0.3.
    for family in ("googlenet", "inception_v2"):
        r = get_recipe(family)
        assert r.optimizer == "sgd" and r.optimizer_kwargs == {"momentum": 0.9}
        assert (r.schedule, r.decay_rate, r.decay_epochs) == ("step", 0.96, 8)
        assert r.aux_loss_weight == 0.3
    assert get_recipe("googlenet").dropout == 0.4


def test_resnet_plain_alexnet_vgg_recipes():
    r = get_recipe("resnet")
    assert (r.optimizer, r.optimizer_kwargs, r.learning_rate) == ("sgd", {"momentum": 0.9}, 0.1)
    assert r.weight_decay == 1e-4 and r.reference_batch_size == 256
    assert r.scaled_learning_rate(256) == pytest.approx(0.1)
    assert r.scaled_learning_rate(64) == pytest.approx(0.025)
    assert get_recipe("plain") == r  # the plain baseline trains exactly like ResNet
    for family in ("alexnet", "vgg"):
        r = get_recipe(family)
        assert (r.optimizer, r.optimizer_kwargs, r.learning_rate) == ("sgd", {"momentum": 0.9}, 0.01)
        assert r.weight_decay == 5e-4 and r.dropout == 0.5
    assert "pca" in get_recipe("alexnet").augment  # AlexNet's PCA colour augmentation


def test_model_names_resolve_to_their_family():
    assert get_recipe("lenet5") == get_recipe("lenet")
    assert get_recipe("resnet50") == get_recipe("resnet")
    assert get_recipe("googlenet") == get_recipe("googlenet")
    assert {"lenet", "resnet", "inception_v3", "plain"} <= set(list_recipes())


def test_overrides_replace_fields_and_keep_the_rest():
    base = get_recipe("resnet")
    r = get_recipe("resnet50", epochs=3, schedule="cosine", learning_rate=0.2)
    assert (r.epochs, r.schedule, r.learning_rate) == (3, "cosine", 0.2)
    assert r.weight_decay == base.weight_decay and r.optimizer_kwargs == base.optimizer_kwargs
    assert base.epochs == 90  # the registry recipe itself is untouched (frozen)
    with pytest.raises(dataclasses_frozen_error()):
        base.epochs = 1
    # Switching optimizer drops the old optimizer's keyword arguments.
    adam = get_recipe("inception_v3", optimizer="adam")
    assert adam.optimizer_kwargs == {}
    # A Recipe can itself be overridden.
    assert get_recipe(r, epochs=5).epochs == 5


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"epochs": 0}, "epochs"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"schedule": "linear"}, "schedule"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"bogus": 1}, "bogus"),
        ({"optimizer_kwargs": {"rho": 0.9}}, "optimizer_kwargs"),  # SGD has no rho
        ({"clipnorm": 0}, "clipnorm"),
    ],
)
def test_bad_overrides_raise_naming_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        get_recipe("resnet", **kwargs)


def test_unknown_family_raises():
    with pytest.raises(ValueError, match="name_or_family"):
        get_recipe("not_a_net")


def test_step_schedule_per_epoch_converted_to_steps():
    # Inception-v3: 0.045 * 0.94 ** floor(epoch / 2), 100 steps per epoch.
    s = build_schedule(get_recipe("inception_v3"), steps_per_epoch=100)
    assert isinstance(s, EpochSchedule)
    values = [float(s(step)) for step in (0, 199, 200, 399, 400)]
    expected = [0.045, 0.045, 0.045 * 0.94, 0.045 * 0.94, 0.045 * 0.94**2]
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_cosine_and_warmup_schedule():
    r = get_recipe("resnet", schedule="cosine", epochs=10, warmup_epochs=2, batch_size=256)
    s = build_schedule(r, steps_per_epoch=10, epochs=10)
    assert float(s(0)) == pytest.approx(0.0)
    assert float(s(10)) == pytest.approx(0.05)  # half-way through the 2-epoch warm-up
    assert float(s(20)) == pytest.approx(0.1)  # peak after warm-up
    assert float(s(60)) == pytest.approx(0.05, rel=1e-5)  # mid cosine
    assert float(s(100)) == pytest.approx(0.0, abs=1e-7)
    # Serializable (for checkpoints of the optimizer config).
    again = EpochSchedule.from_config(s.get_config())
    assert float(again(60)) == pytest.approx(float(s(60)))


def test_build_optimizer_applies_recipe():
    opt = build_optimizer(get_recipe("inception_v3"), steps_per_epoch=10)
    assert isinstance(opt, keras.optimizers.RMSprop)
    assert (opt.rho, opt.momentum, opt.epsilon, opt.clipnorm) == (0.9, 0.9, 1.0, 2.0)
    opt = build_optimizer(get_recipe("resnet"), steps_per_epoch=10, batch_size=128)
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.weight_decay == pytest.approx(1e-4) and opt.momentum == 0.9
    assert float(opt.learning_rate) == pytest.approx(0.05)  # 0.1 * 128 / 256
    plateau = build_optimizer(get_recipe("vgg"), steps_per_epoch=10)
    assert float(plateau.learning_rate) == pytest.approx(0.01)


def test_recipe_to_dict_is_json_ready():
    import json

    d = get_recipe("inception_v3").to_dict()
    assert json.loads(json.dumps(d))["optimizer_kwargs"]["epsilon"] == 1.0
    assert Recipe(**{k: v for k, v in d.items()}) == get_recipe("inception_v3")
    assert math.isclose(d["learning_rate"], 0.045)
