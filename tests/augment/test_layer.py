"""AudioAugment: draws, rates, determinism, config, gin, compiled and fitted use, measured audio."""

import textwrap

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from mssl_tf.augment import OPS, AudioAugment
from tests.jax_runner import run_jax

SR = 22050
ALL_OFF = {f"{op}_p": 0.0 for op in OPS}


def only(op: str, p: float = 1.0, **kwargs) -> AudioAugment:
    """A layer with a single op switched on."""
    return AudioAugment(**{**ALL_OFF, f"{op}_p": p}, **kwargs)


def _clips(batch: int, length: int, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((batch, length)) * level).astype(np.float32)


def test_identity_unless_training():
    layer = AudioAugment(seed=0)
    x = _clips(2, 4096)
    for training in (None, False, 0):
        np.testing.assert_array_equal(np.asarray(layer(x, training=training)), x)
    y = np.asarray(layer(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    assert layer.compute_output_shape((None, 4096)) == (None, 4096)


def test_all_probabilities_zero_is_identity_and_draws_nothing():
    layer = AudioAugment(**ALL_OFF, seed=0)
    x = _clips(3, 2048)
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), x)
    assert layer.sample_parameters(x) == {}


def test_application_rates_within_3_sigma_over_2000_draws():
    layer = AudioAugment(seed=3)
    n = 2000
    params = {k: np.asarray(v) for k, v in layer.sample_parameters(_clips(n, 16)).items()}
    for op in OPS:
        p = layer.probabilities[op]
        rate = params[op].mean()
        assert abs(rate - p) <= 3 * np.sqrt(p * (1 - p) / n), (op, rate, p)
    hp = params["filter_highpass"].mean()
    assert abs(hp - 0.5) <= 3 * np.sqrt(0.25 / n)


def test_draws_cover_the_inclusive_ranges():
    layer = AudioAugment(seed=4)
    p = {k: np.asarray(v) for k, v in layer.sample_parameters(_clips(4000, 16)).items()}
    assert set(np.unique(p["delay_ms"])) == {200, 250, 300, 350, 400, 450}
    cents = p["pitch_cents"]
    assert np.all(cents == np.round(cents)) and cents.min() >= -700 and cents.max() <= 700
    assert cents.min() < -690 and cents.max() > 690
    for name in ("reverb_reverberance", "reverb_damping", "reverb_room_size"):
        v = p[name]
        assert np.all(v == np.round(v)) and v.min() == 0 and v.max() == 99
    assert p["gain_db"].min() >= -20 and p["gain_db"].max() <= -1
    assert 1e-4 <= p["noise_std_ratio"].min() and p["noise_std_ratio"].max() <= 1e-2
    hp = p["filter_highpass"]
    assert np.all((p["filter_cutoff_hz"][hp] >= 200) & (p["filter_cutoff_hz"][hp] <= 1200))
    assert np.all((p["filter_cutoff_hz"][~hp] >= 2200) & (p["filter_cutoff_hz"][~hp] <= 4000))


def test_polarity_rate_measured_on_audio():
    layer = only("polarity", 0.8, seed=5)
    x = np.abs(_clips(2000, 8)) + 0.01
    y = np.asarray(layer(x, training=True))
    inverted = np.all(y == -x, axis=1)
    assert np.all(inverted | np.all(y == x, axis=1))
    assert abs(inverted.mean() - 0.8) <= 3 * np.sqrt(0.8 * 0.2 / 2000)


def test_gain_measured_in_db_within_range():
    layer = only("gain", seed=6)
    x = _clips(8, 4096, level=0.01)  # quiet enough never to clip
    y = np.asarray(layer(x, training=True))
    measured = 20 * np.log10(np.sqrt(np.mean(y ** 2, 1)) / np.sqrt(np.mean(x ** 2, 1)))
    assert np.all((measured >= -20 - 1e-3) & (measured <= -1 + 1e-3)), measured
    assert np.ptp(measured) > 1.0  # per-example draws


def test_noise_measured_std_ratio_in_range():
    layer = only("noise", seed=7)
    x = _clips(8, 59049, level=0.2)
    y = np.asarray(layer(x, training=True))
    ratio = (y - x).std(axis=1) / x.std(axis=1)
    assert np.all((ratio > 1e-4 * 0.97) & (ratio < 1e-2 * 1.03)), ratio


def test_delay_autocorrelation_peak_at_the_drawn_delay():
    layer = only("delay", seed=8)
    x = _clips(6, 16384)
    params = layer.sample_parameters(x)
    y = np.asarray(layer.apply_parameters(x, params))
    for row, ms in zip(y, np.asarray(params["delay_ms"])):
        autocorr = np.fft.irfft(np.abs(np.fft.rfft(row, 32768)) ** 2)
        assert np.argmax(autocorr[100:16000]) + 100 == int(ms * SR / 1000)


def test_two_views_differ_and_fixed_seed_reproduces():
    x = np.tile(_clips(1, 4096), (4, 1))
    a = AudioAugment(seed=11)
    view_1 = np.asarray(a(x, training=True))
    view_2 = np.asarray(a(x, training=True))
    assert not np.allclose(view_1, view_2)
    assert not np.allclose(view_1[0], view_1[1])  # per-example draws within a batch
    b = AudioAugment(seed=11)
    np.testing.assert_array_equal(np.asarray(b(x, training=True)), view_1)
    np.testing.assert_array_equal(np.asarray(b(x, training=True)), view_2)
    c = AudioAugment(seed=12)
    assert not np.allclose(np.asarray(c(x, training=True)), view_1)


def test_config_round_trip():
    layer = AudioAugment(sample_rate=16000, seed=3, pitch_p=0.25, gain_db=(-6.0, 0.0),
                         delay_ms=(200, 500), lowpass_hz=(2000.0, 2000.0), name="aug")
    config = layer.get_config()
    clone = AudioAugment.from_config(config)
    assert clone.get_config() == config
    assert clone.lowpass_hz == (2000.0, 2000.0) and clone.sample_rate == 16000
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == config
    x = _clips(2, 2048)
    np.testing.assert_array_equal(np.asarray(clone(x, training=True)),
                                  np.asarray(layer(x, training=True)))


@pytest.mark.parametrize("kwargs, match", [
    ({"pitch_p": 1.5}, "pitch_p"),
    ({"gain_db": (-1.0, -20.0)}, "gain_db"),
    ({"lowpass_hz": (2200.0, 12000.0)}, "lowpass_hz"),
    ({"pitch_cents": (-700.5, 700)}, "pitch_cents"),
    ({"reverb_room_size": (0, 150)}, "reverb_room_size"),
    ({"pitch_n_fft": 4096}, "pitch_n_fft"),
    ({"delay_ms": 300}, "delay_ms"),
])
def test_bad_arguments_name_the_setting(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AudioAugment(**kwargs)


def test_rejects_unbatched_or_channel_axis_input():
    with pytest.raises(ValueError, match="squeeze"):
        AudioAugment()(np.zeros((2, 100, 1), np.float32), training=True)


def test_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = AudioAugment(seed=1)
        y = layer(_clips(2, 2048), training=True)
        assert layer.compute_dtype == "float32" and y.dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_xla_compiled_chain_equals_eager_chain():
    layer = AudioAugment(seed=2, noise_p=0.5)

    @tf.function(jit_compile=True)
    def step(x):
        params = layer.sample_parameters(x)
        return params, layer.apply_parameters(x, params)

    x = _clips(4, 2048)
    params, y = step(tf.constant(x))
    params_2, _ = step(tf.constant(x))
    assert not np.allclose(params["gain_db"], params_2["gain_db"])  # state advances under XLA
    eager = np.asarray(layer.apply_parameters(tf.constant(x), params))
    np.testing.assert_allclose(np.asarray(y), eager, atol=1e-3)


def test_replicas_of_a_distribution_strategy_draw_different_parameters():
    # Every replica holds the same SeedGenerator state; the clips' content separates their draws.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = AudioAugment(seed=3)
    x = _clips(8, 256)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(8))

    @tf.function
    def step(batch):
        return strategy.run(lambda b: layer.sample_parameters(b)["gain_db"], args=(batch,))

    first, second = [t.numpy() for t in step(next(iter(dataset))).values]
    assert first.shape == (4,) and not np.allclose(first, second)


class TwoViewsModel(keras.Model):
    """The SSLModel pattern: the augmenter is called once per view inside `call`."""

    def __init__(self, augmenter):
        super().__init__()
        self.augmenter = augmenter
        self.dense = keras.layers.Dense(1)

    def call(self, x, training=False):
        a = self.augmenter(x, training=True)
        b = self.augmenter(x, training=True)
        return self.dense(a) - self.dense(b)


@pytest.mark.slow
def test_runs_inside_model_fit_with_fresh_draws_each_step():
    augmenter = AudioAugment(seed=9)
    model = TwoViewsModel(augmenter)
    model.compile(optimizer="sgd", loss="mse")
    x = _clips(8, 2048)
    state_before = np.asarray(augmenter.seed_generator.state.value).copy()
    history = model.fit(x, np.zeros((8, 1), np.float32), batch_size=4, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][0] > 0  # the two views differ
    state_after = np.asarray(augmenter.seed_generator.state.value)
    assert not np.array_equal(state_before, state_after)


@gin.configurable("augment_test_factory")
def _factory(augmenter=None):
    return augmenter


@pytest.mark.parametrize("name", ["clmr", "thesis_text", "none"])
def test_gin_files_parse_and_configure_the_layer(name):
    from mssl_tf import gin_utils  # the project's parse order and search path
    try:
        gin_utils.parse([f"augment/{name}.gin"],
                        ["augment_test_factory.augmenter = @AudioAugment()"])
        layer = _factory()
    finally:
        gin.clear_config()
    assert isinstance(layer, AudioAugment)
    if name == "clmr":
        assert layer.get_config() == {**AudioAugment().get_config(), "name": layer.name,
                                      "seed": None}
    elif name == "thesis_text":
        assert layer.gain_db == (-6.0, 0.0) and layer.pitch_cents == (-500, 500)
        assert layer.delay_ms == (200, 500) and layer.noise_std_ratio == (1e-4, 1e-4)
        assert layer.reverb_room_size == (0, 100) and layer.probabilities["pitch"] == 0.6
    else:
        assert all(p == 0.0 for p in layer.probabilities.values())


_JAX_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "jax"
    sys.modules["tensorflow"] = None  # as on the GPU machine: the augment package needs no TF
    import jax, keras, numpy as np
    from mssl_tf.augment import AudioAugment

    x = (np.random.default_rng(0).standard_normal((4, 2048)) * 0.1).astype(np.float32)

    # Inside a bare jax.jit the RNG state must be threaded: stateless_call returns the new state.
    # (Two cheap ops suffice for the state handling; the full chain runs in fit below.)
    heavy = ("filter", "delay", "pitch", "reverb")
    layer = AudioAugment(seed=1, **{f"{op}_p": 0.0 for op in heavy})
    layer.build(x.shape)
    @jax.jit
    def step(state, x):
        return layer.stateless_call([], state, x, training=True)
    state = [v.value for v in layer.non_trainable_variables]
    y1, state = step(state, x)
    y2, state = step(state, x)
    assert not np.allclose(y1, y2), "draws frozen under jax.jit"

    # The full chain inside Keras' jitted train step, which threads the SeedGenerator state.
    class OneView(keras.Model):
        def __init__(self):
            super().__init__()
            self.aug = AudioAugment(seed=2, pitch_p=1.0, reverb_p=1.0, filter_p=1.0)
            self.dense = keras.layers.Dense(1)
        def call(self, x, training=False):
            return self.dense(self.aug(x, training=True))
    model = OneView()
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    before = np.asarray(model.aug.seed_generator.state.value).copy()
    history = model.fit(x, np.zeros((4, 1), np.float32), batch_size=2, epochs=1, verbose=0)
    model.jax_state_sync()
    after = np.asarray(model.aug.seed_generator.state.value)
    assert np.all(np.isfinite(history.history["loss"])) and not np.array_equal(before, after)
    print("JAX_OK")
""")


@pytest.mark.slow
def test_jax_backend_jit_and_fit():
    pytest.importorskip("jax")
    result = run_jax(_JAX_SCRIPT)
    assert "JAX_OK" in result.stdout, result.stderr[-3000:]
