"""TorchAdam against a numpy transcription of torch.optim.Adam with coupled weight decay."""

import keras
import numpy as np
import pytest

from mssl_tf.eval.optimizer import TorchAdam


def _torch_adam(w, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    """torch.optim.Adam (amsgrad False), single-tensor path, transcribed to numpy in float64."""
    w = w.astype(np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        bias1, bias2 = 1 - b1 ** t, 1 - b2 ** t
        denom = np.sqrt(v) / np.sqrt(bias2) + eps
        w = w - (lr / bias1) * m / denom
    return w


@pytest.mark.parametrize("wd", [0.0, 1e-6, 0.1])
def test_steps_match_torch_adam(wd):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)
    # Tiny gradients make the epsilon placement matter (Keras' Adam differs there).
    grads = [rng.normal(scale=s, size=(5, 3)).astype(np.float32) for s in (1e-6, 1.0, 1e-3)]
    var = keras.Variable(w0)
    opt = TorchAdam(learning_rate=1e-3, l2=wd)
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    expected = _torch_adam(w0, grads, wd=wd)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var), expected, rtol=0, atol=2e-7)
    # Keras' Adam (eps on the uncorrected sqrt(v)) differs on the same tiny gradients.
    if wd == 0.0:
        kvar = keras.Variable(w0)
        kopt = keras.optimizers.Adam(1e-3, epsilon=1e-8)
        for g in grads:
            kopt.apply_gradients([(keras.ops.convert_to_tensor(g), kvar)])
        assert np.abs(keras.ops.convert_to_numpy(kvar) - expected).max() > 1e-5


def test_coupled_decay_differs_from_decoupled():
    w0 = np.full((4,), 2.0, np.float32)
    grads = [np.full((4,), 1e-4, np.float32)] * 3
    var = keras.Variable(w0)
    opt = TorchAdam(learning_rate=0.1, l2=0.5)
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var),
                               _torch_adam(w0, grads, lr=0.1, wd=0.5), rtol=1e-5)
    wvar = keras.Variable(w0)
    aw = keras.optimizers.AdamW(learning_rate=0.1, weight_decay=0.5, epsilon=1e-8)
    for g in grads:
        aw.apply_gradients([(keras.ops.convert_to_tensor(g), wvar)])
    assert np.abs(keras.ops.convert_to_numpy(wvar) - keras.ops.convert_to_numpy(var)).max() > 1e-2


def test_config_round_trip_and_refusals():
    opt = TorchAdam(learning_rate=3e-4, l2=1e-6, beta_2=0.99)
    again = TorchAdam.from_config(opt.get_config())
    assert (again.l2, again.beta_2, again.epsilon) == (1e-6, 0.99, 1e-8)
    with pytest.raises(ValueError, match="coupled"):
        TorchAdam(weight_decay=1e-6)
    with pytest.raises(ValueError, match="l2"):
        TorchAdam(l2=-1.0)
