"""LARS against hand-computed steps and a numpy transcription of facebookresearch/vicreg's LARS."""

import textwrap

import keras
import numpy as np
import pytest
from keras import ops

from mssl_tf.optim import LARS, WarmupCosine
from tests.jax_runner import last_json, run_jax
from tests.references import reference_lr, two_cpu_strategy


class NumpyLARS:
    """main_vicreg.py LARS.step in float64, with vicreg's exclude_bias_and_norm (ndim == 1)."""

    def __init__(self, lr, momentum=0.9, weight_decay=1e-6, eta=0.001):
        self.lr = lr if callable(lr) else (lambda step: lr)
        self.momentum, self.weight_decay, self.eta = momentum, weight_decay, eta
        self.mu = None
        self.step_count = 0

    def step(self, params, grads):
        if self.mu is None:
            self.mu = [np.zeros_like(p, dtype=np.float64) for p in params]
        lr = self.lr(self.step_count)
        new = []
        for i, (p, g) in enumerate(zip(params, grads)):
            p = np.asarray(p, np.float64)
            dp = np.asarray(g, np.float64)
            if p.ndim != 1:
                dp = dp + self.weight_decay * p
                param_norm, update_norm = np.linalg.norm(p), np.linalg.norm(dp)
                positive = param_norm > 0 and update_norm > 0
                q = self.eta * param_norm / update_norm if positive else 1.0
                dp = dp * q
            self.mu[i] = self.momentum * self.mu[i] + dp
            new.append(p - lr * self.mu[i])
        self.step_count += 1
        return new


def _values(variables):
    return [ops.convert_to_numpy(v).astype(np.float64) for v in variables]


def _variables(arrays):
    return [keras.Variable(np.asarray(a, "float32")) for a in arrays]


def _gradient(params, targets):
    """A weight-dependent gradient (of a non-quadratic loss) shared by Keras and numpy runs."""
    return [(np.sin(3 * p) + 0.5 * p - t).astype("float32") for p, t in zip(params, targets)]


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
def test_config_round_trip():
    opt = LARS(learning_rate=0.3, momentum=0.8, weight_decay=1e-4, eta=0.02, name="my_lars")
    config = opt.get_config()
    assert config["momentum"] == 0.8 and config["weight_decay"] == 1e-4 and config["eta"] == 0.02
    assert config["learning_rate"] == pytest.approx(0.3)
    clone = LARS.from_config(config)
    assert clone.get_config() == config
    # Keras' own decoupled decay is off: only the LARS term is applied.
    assert clone.weight_decay is None and clone.lars_weight_decay == 1e-4


def test_config_round_trip_with_schedule_and_keras_serialization():
    schedule = WarmupCosine(0.2, 512, steps_per_epoch=3, total_epochs=4, warmup_epochs=1)
    opt = LARS(learning_rate=schedule)
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(revived, LARS)
    assert isinstance(revived._learning_rate, WarmupCosine)
    assert revived.get_config() == opt.get_config()


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="momentum must be in"):
        LARS(momentum=1.5)
    with pytest.raises(ValueError, match="eta must be > 0"):
        LARS(eta=0.0)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        LARS(weight_decay=-1.0)


# ---------------------------------------------------------------------------------------------
# hand-computed steps
# ---------------------------------------------------------------------------------------------
def test_one_step_by_hand():
    # w = [[3, 4]] (||w|| = 5), g = [[0.6, 0.8]], wd = 0.1: g + wd w = [[0.9, 1.2]] (norm 1.5),
    # trust = 0.001 * 5 / 1.5 = 1/300, scaled update = [[0.003, 0.004]] = mu, lr 0.1:
    # w' = [[3 - 0.0003, 4 - 0.0004]].
    w = keras.Variable(np.array([[3.0, 4.0]], "float32"))
    opt = LARS(learning_rate=0.1, momentum=0.9, weight_decay=0.1, eta=0.001)
    opt.apply([np.array([[0.6, 0.8]], "float32")], [w])
    np.testing.assert_allclose(ops.convert_to_numpy(w), [[2.9997, 3.9996]], rtol=1e-7)
    # Second step, same gradient: w changed a little, so compute it from the definition.
    w1 = np.array([[2.9997, 3.9996]])
    dp = np.array([[0.6, 0.8]]) + 0.1 * w1
    mu = 0.9 * np.array([[0.003, 0.004]]) + 0.001 * np.linalg.norm(w1) / np.linalg.norm(dp) * dp
    opt.apply([np.array([[0.6, 0.8]], "float32")], [w])
    np.testing.assert_allclose(ops.convert_to_numpy(w), w1 - 0.1 * mu, rtol=1e-7)


def test_rank_one_variables_get_plain_momentum():
    # Biases and BN gamma/beta: no decay and no trust ratio even with a huge weight decay.
    opt = LARS(learning_rate=0.5, momentum=0.9, weight_decay=10.0, eta=0.001)
    b = keras.Variable(np.array([1.0, -2.0, 3.0], "float32"))
    k = keras.Variable(np.ones((3, 2), "float32"))
    g_b = np.array([0.5, 0.25, -1.0], "float32")
    opt.apply([g_b, np.ones((3, 2), "float32")], [b, k])
    np.testing.assert_allclose(ops.convert_to_numpy(b), [1.0, -2.0, 3.0] - 0.5 * g_b, rtol=1e-7)
    opt.apply([g_b, np.ones((3, 2), "float32")], [b, k])
    np.testing.assert_allclose(ops.convert_to_numpy(b),
                               [1.0, -2.0, 3.0] - 0.5 * g_b - 0.5 * 1.9 * g_b, rtol=1e-6)
    # The rank-2 kernel is adapted: its step is eta * ||w|| = 0.001 * sqrt(6) in norm.
    step = np.ones((3, 2)) - ops.convert_to_numpy(k)
    assert 0 < np.linalg.norm(step) < 0.5 * 1.9 * 0.01


def test_excludes_batchnorm_and_bias_of_a_model_by_rank():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization(),
                              keras.layers.Dense(2, use_bias=False)])
    params = _values(model.trainable_variables)
    assert sorted(p.ndim for p in params) == [1, 1, 1, 2, 2]  # bias, gamma, beta, 2 kernels
    grads = [np.full(p.shape, 0.1, "float32") for p in params]
    opt = LARS(learning_rate=1.0, weight_decay=0.5, eta=0.01)
    opt.apply(grads, model.trainable_variables)
    for before, after, g in zip(params, _values(model.trainable_variables), grads):
        if before.ndim == 1:
            np.testing.assert_allclose(after, before - 0.1, rtol=1e-6)
        else:
            dp = g + 0.5 * before
            q = 0.01 * np.linalg.norm(before) / np.linalg.norm(dp)
            np.testing.assert_allclose(after, before - q * dp, rtol=1e-5, atol=1e-7)


def test_zero_norm_guards():
    opt = LARS(learning_rate=0.1, momentum=0.9, weight_decay=0.01, eta=0.001)
    zero_w = keras.Variable(np.zeros((2, 2), "float32"))     # ||w|| = 0 -> trust 1
    zero_g = keras.Variable(np.full((2, 2), 2.0, "float32"))  # ||g + wd w|| > 0 (decay only)
    both = keras.Variable(np.zeros((2, 3), "float32"))       # ||w|| = ||g|| = 0 -> no NaN
    g = np.array([[1.0, -2.0], [0.5, 0.0]], "float32")
    opt.apply([g, np.zeros((2, 2), "float32"), np.zeros((2, 3), "float32")],
              [zero_w, zero_g, both])
    np.testing.assert_allclose(ops.convert_to_numpy(zero_w), -0.1 * g, rtol=1e-7)
    # g = 0, so dp = wd * w and the trust ratio eta * ||w|| / (wd ||w||) = 0.1 gives
    # w' = w - lr * 0.1 * wd * w = 2 * (1 - 1e-4).
    np.testing.assert_allclose(ops.convert_to_numpy(zero_g), 2.0 * (1 - 1e-4), rtol=1e-7)
    np.testing.assert_array_equal(ops.convert_to_numpy(both), 0.0)
    # Same with no weight decay: ||g|| = 0 -> trust 1, nothing moves.
    opt2 = LARS(learning_rate=0.1, weight_decay=0.0)
    w = keras.Variable(np.full((2, 2), 3.0, "float32"))
    opt2.apply([np.zeros((2, 2), "float32")], [w])
    np.testing.assert_array_equal(ops.convert_to_numpy(w), 3.0)


# ---------------------------------------------------------------------------------------------
# golden trajectories against the numpy transcription
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr,momentum,weight_decay,eta", [
    (0.2, 0.9, 1e-6, 0.001),     # vicreg defaults
    (0.5, 0.8, 0.05, 0.1),       # large decay and trust so every term is visible
    (1.0, 0.0, 0.0, 0.05),       # no momentum, no decay
])
def test_five_step_trajectory_matches_numpy(lr, momentum, weight_decay, eta):
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((4, 3)), rng.standard_normal((3,)), rng.standard_normal((3, 2, 2)),
            rng.standard_normal((5,))]
    targets = [rng.standard_normal(p.shape) for p in init]
    variables = _variables(init)
    opt = LARS(learning_rate=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)
    ref = NumpyLARS(lr, momentum, weight_decay, eta)
    ref_params = [np.asarray(p, "float32").astype(np.float64) for p in init]
    for _ in range(5):
        opt.apply(_gradient(_values(variables), targets), variables)
        ref_params = ref.step(ref_params, _gradient(ref_params, targets))
    for got, want, start in zip(_values(variables), ref_params, init):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        # Compare the displacement too: with eta = 0.001 the weights move by ~1e-3 only, so it
        # must agree to 1e-4 relative (atol = the float32 resolution of weights of size ~2).
        np.testing.assert_allclose(got - start.astype("float32"), want - start.astype("float32"),
                                   rtol=1e-4, atol=3e-7)
    assert int(ops.convert_to_numpy(opt.iterations)) == 5


def test_trajectory_with_schedule_matches_numpy():
    schedule = WarmupCosine(0.4, 256, steps_per_epoch=2, total_epochs=4, warmup_epochs=1)

    def lr(step):
        return float(ops.convert_to_numpy(schedule(step)))

    rng = np.random.default_rng(1)
    init = [rng.standard_normal((3, 3)), rng.standard_normal((3,))]
    targets = [rng.standard_normal(p.shape) for p in init]
    variables = _variables(init)
    opt = LARS(learning_rate=schedule, weight_decay=0.01, eta=0.1)
    ref = NumpyLARS(lr, 0.9, 0.01, 0.1)
    ref_params = [np.asarray(p, "float32").astype(np.float64) for p in init]
    for step in range(6):
        opt.apply(_gradient(_values(variables), targets), variables)
        ref_params = ref.step(ref_params, _gradient(ref_params, targets))
        if step == 0:  # lr(0) = 0: the first step only fills the momentum buffer
            np.testing.assert_array_equal(_values(variables)[0], np.float32(init[0]))
    for got, want in zip(_values(variables), ref_params):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# two replicas
# ---------------------------------------------------------------------------------------------
def _tiny_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"),
                             keras.layers.Dense(2)])


@pytest.mark.slow
def test_two_replica_steps_equal_single_device():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute check needs the TensorFlow backend")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4)).astype("float32")
    y = rng.standard_normal((8, 2)).astype("float32")
    weights = _tiny_model().get_weights()
    kwargs = dict(learning_rate=0.5, momentum=0.9, weight_decay=0.01, eta=0.05)

    # Single device: mean squared error over the global batch of 8.
    model = _tiny_model()
    model.set_weights(weights)
    opt = LARS(**kwargs)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(model(x) - y), axis=1))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))

    strategy = two_cpu_strategy()
    with strategy.scope():
        dist_model = _tiny_model()
        dist_model.set_weights(weights)
        dist_opt = LARS(**kwargs)
        dist_opt.build(dist_model.trainable_variables)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            # Each replica's sum / global batch: the optimizer's cross-replica SUM gives the mean.
            loss = tf.reduce_sum(tf.square(dist_model(xb) - yb)) / 8.0
        grads = tape.gradient(loss, dist_model.trainable_variables)
        dist_opt.apply_gradients(zip(grads, dist_model.trainable_variables))

    @tf.function
    def train_step(xb, yb):
        strategy.run(replica_step, args=(xb, yb))

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    for _ in range(2):
        train_step(*batch)

    moved = max(np.abs(a - b).max() for a, b in zip(model.get_weights(), weights))
    assert moved > 1e-3
    for got, want in zip(dist_model.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# the JAX backend
# ---------------------------------------------------------------------------------------------
_JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    # No TensorFlow in this process: the keras-only core must import and run without it (the
    # layering rule), as on a JAX-only GPU machine.
    sys.modules["tensorflow"] = None
    import jax, keras, numpy as np
    from mssl_tf.optim import LARS, WarmupCosine
    data = np.load(sys.argv[1])
    init = [data["k"], data["b"]]
    targets = [data["tk"], data["tb"]]
    def gradient(params):
        return [(np.sin(3 * p) + 0.5 * p - t).astype("float32") for p, t in zip(params, targets)]
    schedule = WarmupCosine(0.4, 256, steps_per_epoch=2, total_epochs=4, warmup_epochs=1)
    out = {"backend": keras.backend.backend()}

    # Eager, stateful apply.
    variables = [keras.Variable(p) for p in init]
    opt = LARS(learning_rate=schedule, weight_decay=0.01, eta=0.1)
    for _ in range(5):
        opt.apply(gradient([np.asarray(v.value) for v in variables]), variables)
    out["eager"] = [np.asarray(v.value).tolist() for v in variables]

    # Jitted stateless_apply, as model.fit runs it on JAX.
    variables = [keras.Variable(p) for p in init]
    opt = LARS(learning_rate=schedule, weight_decay=0.01, eta=0.1)
    opt.build(variables)
    step = jax.jit(opt.stateless_apply)
    params = [v.value for v in variables]
    opt_vars = [v.value for v in opt.variables]
    for _ in range(5):
        params, opt_vars = step(opt_vars, gradient([np.asarray(p) for p in params]), params)
    out["jit"] = [np.asarray(p).tolist() for p in params]

    # The schedule drives Adam too.
    w = keras.Variable(np.zeros((2,), "float32"))
    adam = keras.optimizers.Adam(learning_rate=schedule)
    adam.apply([np.ones((2,), "float32")], [w])
    out["adam_first_step"] = np.asarray(w.value).tolist()
    out["lr"] = [float(schedule(i)) for i in range(12)]
    out["tensorflow_imported"] = any(m.startswith("tensorflow") and sys.modules[m] is not None
                                     for m in list(sys.modules))
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_jax_backend_matches_numpy(tmp_path):
    """LARS (eager and jitted stateless_apply) and WarmupCosine on the JAX backend."""
    pytest.importorskip("jax")
    rng = np.random.default_rng(4)
    data = {"k": rng.standard_normal((3, 3)), "b": rng.standard_normal((3,)),
            "tk": rng.standard_normal((3, 3)), "tb": rng.standard_normal((3,))}
    np.savez(tmp_path / "init.npz", **{k: v.astype("float32") for k, v in data.items()})
    out = last_json(run_jax(_JAX_SCRIPT, tmp_path / "init.npz"))
    assert out["backend"] == "jax" and not out["tensorflow_imported"]

    def lr(step):
        return reference_lr(step, 0.4, 256, 2, 4, 1)

    np.testing.assert_allclose(out["lr"], [lr(i) for i in range(12)], rtol=1e-5, atol=1e-9)
    ref = NumpyLARS(lr, 0.9, 0.01, 0.1)
    params = [data["k"].astype("float32").astype(np.float64),
              data["b"].astype("float32").astype(np.float64)]
    targets = [data["tk"].astype("float32"), data["tb"].astype("float32")]
    for _ in range(5):
        params = ref.step(params, _gradient(params, targets))
    for mode in ("eager", "jit"):
        for got, want in zip(out[mode], params):
            np.testing.assert_allclose(np.array(got), want, rtol=0, atol=1e-6, err_msg=mode)
    np.testing.assert_array_equal(out["adam_first_step"], 0.0)  # lr(0) = 0
