"""Ghost BatchNorm == BN per group; PyTorch-default initialisation bounds and spreads per layer."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from mssl_tf.models import (
    GhostBatchNormalization,
    build_projector,
    build_sample_cnn,
    initializers,
)
from tests.references import torch_default_bounds

MOMENTUM, EPSILON = 0.9, 1e-5


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _set_state(layer, rng, channels):
    layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.uniform(-0.5, 0.5, channels),
                       rng.uniform(-0.2, 0.2, channels), rng.uniform(0.5, 2.0, channels)])


# ---------------------------------------------------------------------------------------------
# ghost BatchNorm
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(12, 4), (12, 5, 3)])
def test_ghost_bn_equals_bn_applied_per_group(shape):
    rng = np.random.default_rng(0)
    channels, size = shape[-1], 4
    ghost = GhostBatchNormalization(virtual_batch_size=size, momentum=MOMENTUM, epsilon=EPSILON)
    ghost.build(shape)
    _set_state(ghost, np.random.default_rng(1), channels)
    groups = []
    for _ in range(shape[0] // size):  # one ordinary BN per group, same starting state
        bn = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
        bn.build(shape)
        _set_state(bn, np.random.default_rng(1), channels)
        groups.append(bn)
    for step in range(2):  # twice: the moving statistics keep following
        x = (3.0 * rng.standard_normal(shape) + np.arange(shape[0]).reshape(
            (-1,) + (1,) * (len(shape) - 1))).astype("float32")
        got = _np(ghost(x, training=True))
        want = np.concatenate([_np(bn(x[k * size:(k + 1) * size], training=True))
                               for k, bn in enumerate(groups)])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        for var in ("moving_mean", "moving_variance"):
            np.testing.assert_allclose(
                _np(getattr(ghost, var)),
                np.mean([_np(getattr(bn, var)) for bn in groups], axis=0), rtol=1e-5, atol=1e-6)
    # The control: statistics over the whole batch give other outputs (the rows' offsets differ).
    whole = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    whole.build(shape)
    _set_state(whole, np.random.default_rng(1), channels)
    assert np.abs(_np(whole(x, training=True)) - got).max() > 0.1


def test_ghost_bn_gradients_equal_per_group_bn():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("GradientTape needs the TensorFlow backend")
    x = tf.constant(np.random.default_rng(2).standard_normal((8, 3)).astype("float32"))
    w = tf.constant(np.random.default_rng(3).standard_normal((8, 3)).astype("float32"))
    ghost = GhostBatchNormalization(virtual_batch_size=4, epsilon=EPSILON)
    bn = keras.layers.BatchNormalization(epsilon=EPSILON)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ghost_loss = tf.reduce_sum(w * ghost(x, training=True))
        bn_loss = tf.reduce_sum(w[:4] * bn(x[:4], training=True)) + tf.reduce_sum(
            w[4:] * bn(x[4:], training=True))
    np.testing.assert_allclose(tape.gradient(ghost_loss, x), tape.gradient(bn_loss, x),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(ghost_loss, ghost.gamma),
                               tape.gradient(bn_loss, bn.gamma), rtol=1e-4, atol=1e-5)


def test_ghost_bn_inference_is_plain_bn_and_config_round_trips():
    x = np.random.default_rng(4).standard_normal((6, 3)).astype("float32")
    ghost = GhostBatchNormalization(virtual_batch_size=2, momentum=MOMENTUM, epsilon=EPSILON)
    bn = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    for layer in (ghost, bn):
        layer.build(x.shape)
        _set_state(layer, np.random.default_rng(5), 3)
    np.testing.assert_allclose(_np(ghost(x, training=False)), _np(bn(x, training=False)),
                               rtol=1e-6)
    clone = GhostBatchNormalization.from_config(ghost.get_config())
    assert clone.virtual_batch_size == 2 and clone.momentum == MOMENTUM


def test_ghost_bn_bad_settings_are_explained():
    with pytest.raises(ValueError, match="not a multiple of virtual_batch_size=4"):
        GhostBatchNormalization(virtual_batch_size=4)(np.zeros((6, 2), "float32"), training=True)
    with pytest.raises(ValueError, match="synchronized"):
        GhostBatchNormalization(virtual_batch_size=4, synchronized=True)


def test_encoder_and_projector_with_ghost_bn_treat_each_group_alone():
    """Training-mode rows of one group depend on that group only: f(x) == [f(x1), f(x2)]."""
    encoder = build_sample_cnn(8, crop_len=243, widths=(8, 8, 8, 8), ghost_batch_size=4)
    projector = build_projector("vicreg", "16-8", 8, ghost_batch_size=4)
    ghosts = [layer for m in (encoder, projector) for layer in m.layers
              if isinstance(layer, GhostBatchNormalization)]
    assert len(ghosts) == 6 + 1 and all(layer.virtual_batch_size == 4 for layer in ghosts)
    x = np.random.default_rng(6).uniform(-1, 1, (8, 243)).astype("float32")

    def run(v):
        return _np(projector(encoder(v, training=True), training=True))

    np.testing.assert_allclose(run(x), np.concatenate([run(x[:4]), run(x[4:])]),
                               rtol=1e-4, atol=1e-5)
    plain = build_sample_cnn(8, crop_len=243, widths=(8, 8, 8, 8))
    plain.set_weights(encoder.get_weights())  # same variables: snapshots load either way
    np.testing.assert_allclose(_np(plain(x)), _np(encoder(x)), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# PyTorch's default initialisation
# ---------------------------------------------------------------------------------------------
def _fan_in(kernel):
    return int(np.prod(kernel.shape[:-1]))  # Conv1D (k, in, out) -> k*in; Dense (in, out) -> in


def _check_uniform(values, bound, what):
    values = np.asarray(values, np.float64).ravel()
    n = values.size
    assert np.abs(values).max() <= bound * (1 + 1e-6), what
    # A uniform's sample std has relative spread ~ sqrt(0.2 / n): 5 of those is a safe margin.
    np.testing.assert_allclose(values.std(), bound / math.sqrt(3),
                               rtol=5 * math.sqrt(0.2 / n), err_msg=what)
    if n >= 100:
        assert np.abs(values).max() > bound * (1 - 10 / n), what  # fills the whole interval


def _dense_and_conv_layers(model):
    return [layer for layer in model.layers
            if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D))]


@pytest.mark.parametrize("which", ["encoder", "vicreg_projector", "clmr_projector"])
def test_torch_init_bounds_and_spreads_per_layer(which):
    model = {"encoder": lambda: build_sample_cnn(32, crop_len=729, widths=(16, 16, 32, 32, 64),
                                                 init="torch"),
             "vicreg_projector": lambda: build_projector("vicreg", "64-64-32", 32, init="torch"),
             "clmr_projector": lambda: build_projector("clmr", "32-16", 32, init="torch")}[which]()
    layers = _dense_and_conv_layers(model)
    assert layers
    for layer in layers:
        fan_in = _fan_in(layer.kernel)
        w_bound, b_bound = torch_default_bounds(fan_in)
        assert w_bound == pytest.approx(1 / math.sqrt(fan_in))
        _check_uniform(_np(layer.kernel), w_bound, f"{layer.name} kernel")
        if layer.use_bias:
            _check_uniform(_np(layer.bias), b_bound, f"{layer.name} bias")
    for layer in model.layers:  # BN: gamma 1, beta 0, as torch's
        if isinstance(layer, keras.layers.BatchNormalization):
            assert np.all(_np(layer.gamma) == 1) and np.all(_np(layer.beta) == 0)


def test_keras_init_stays_the_default():
    encoder = build_sample_cnn(16, crop_len=243, widths=(8, 8, 8, 8))
    conv = encoder.get_layer("block2_conv")
    fan_in, fan_out = 3 * 8, 3 * 8
    glorot = math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(_np(conv.kernel)).max() <= glorot and np.all(_np(conv.bias) == 0)
    with pytest.raises(ValueError, match="init must be one of"):
        initializers("xavier", 3)


def test_torch_twin_has_the_same_distribution():
    """Where PyTorch is installed: its own nn.Conv1d / nn.Linear draws, same bounds and spread."""
    torch = pytest.importorskip("torch")
    encoder = build_sample_cnn(32, crop_len=729, widths=(16, 16, 32, 32, 64), init="torch")
    projector = build_projector("vicreg", "64-64-32", 32, init="torch")
    for layer in _dense_and_conv_layers(encoder) + _dense_and_conv_layers(projector):
        shape = layer.kernel.shape
        if len(shape) == 3:
            twin = torch.nn.Conv1d(shape[1], shape[2], shape[0], bias=layer.use_bias)
        else:
            twin = torch.nn.Linear(shape[0], shape[1], bias=layer.use_bias)
        ours, theirs = _np(layer.kernel).ravel(), twin.weight.detach().numpy().ravel()
        np.testing.assert_allclose(np.abs(ours).max(), np.abs(theirs).max(), rtol=0.05)
        np.testing.assert_allclose(ours.std(), theirs.std(), rtol=10 * math.sqrt(0.2 / ours.size))
        if layer.use_bias:
            assert np.abs(_np(layer.bias)).max() <= twin.bias.abs().max().item() * 1.2
