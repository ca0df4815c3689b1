"""AudioAugment: CLMR's chain of random audio augmentations as one in-graph Keras layer.

torchaudio-augmentations' `RandomApply([op], p)` chain from CLMR's main.py, in the same order:
polarity inversion, noise, gain, high/low-pass, delay, pitch shift, reverb. Each view of each clip
gets its own draws. Inside the graph there is no per-clip Python branching: every op whose
probability is non-zero is computed for the whole batch and selected per clip with a mask, so the
layer has static shapes and compiles with XLA (TPU, GPU, `jax.jit`). Random draws come from the
state of a `keras.random.SeedGenerator` owned by the layer (which Keras threads through compiled
train steps on both backends), mixed per clip with its position and first samples (draws.py).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from mssl_tf import constants
from mssl_tf.augment import draws
from mssl_tf.augment import ops as aug_ops
from mssl_tf.augment.filters import half_size
from mssl_tf.augment.pitch import MAX_N_FFT

#: Order of the chain (CLMR main.py) and the name of each op's probability argument.
OPS = ("polarity", "noise", "gain", "filter", "delay", "pitch", "reverb")
#: One uniform per clip for each of these choices (columns of `draws.uniforms`).
_DRAWS = ("polarity", "noise", "noise_std_ratio", "gain", "gain_db", "filter", "filter_highpass",
          "highpass_hz", "lowpass_hz", "delay", "delay_ms", "pitch", "pitch_cents", "reverb",
          "reverb_reverberance", "reverb_damping", "reverb_room_size")


def _pair(name: str, value, integer: bool = False) -> tuple:
    """Validates a (low, high) range argument; a pair with equal ends fixes the value."""
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ValueError(f"AudioAugment.{name}={value!r}: expected a (low, high) pair") from None
    if integer:
        if int(low) != low or int(high) != high:
            raise ValueError(f"AudioAugment.{name}={value!r}: expected whole numbers")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"AudioAugment.{name}=({low}, {high}): need finite low <= high")
    return (low, high)


@keras.saving.register_keras_serializable(package="mssl_tf")
class AudioAugment(keras.layers.Layer):
    """CLMR's eight pre-training augmentations (after the crop), batched and per example.

    Defaults are the CLMR code's (torchaudio-augmentations 0.2.4); `gin/augment/thesis_text.gin`
    holds the values the thesis text lists. Ranges are inclusive (low, high) pairs; integer ranges
    (delay, pitch, reverb) draw whole numbers uniformly, like `random.randint` / `torch.randint`.

    Args:
      sample_rate: sampling rate of the clips in Hz.
      seed: seed of the layer's `keras.random.SeedGenerator` (None: random).
      polarity_p: probability of x -> -x.
      noise_p: probability of additive Gaussian noise.
      gain_p: probability of a gain change (then clipping to [-1, 1]).
      filter_p: probability of a high- or low-pass filter (50/50).
      delay_p: probability of the delay (echo) effect.
      pitch_p: probability of a pitch shift.
      reverb_p: probability of sox-style reverb.
      noise_std_ratio: noise std as a fraction of the clip's std.
      gain_db: gain in dB.
      highpass_hz: high-pass cutoff in Hz.
      lowpass_hz: low-pass cutoff in Hz.
      delay_ms: delay in whole ms, drawn from low, low + delay_step_ms, ... <= high.
      pitch_cents: pitch shift in whole cents.
      reverb_reverberance: sox reverberance in whole percent.
      reverb_damping: sox HF damping in whole percent.
      reverb_room_size: sox room scale in whole percent.
      delay_step_ms: spacing of the delay choices (CLMR 50 ms).
      pitch_n_fft: window of the pitch shifter's phase vocoder (<= 1024).
      **kwargs: keras Layer arguments (name, ...). The dtype defaults to float32: the layer computes
        in float32 even under a mixed-precision policy.
    """

    def __init__(self,
                 sample_rate: int = constants.SAMPLE_RATE,
                 seed: int | None = None,
                 polarity_p: float = 0.8,
                 noise_p: float = 0.01,
                 gain_p: float = 0.3,
                 filter_p: float = 0.8,
                 delay_p: float = 0.3,
                 pitch_p: float = 0.6,
                 reverb_p: float = 0.6,
                 noise_std_ratio: tuple[float, float] = (1e-4, 1e-2),
                 gain_db: tuple[float, float] = (-20.0, -1.0),
                 highpass_hz: tuple[float, float] = (200.0, 1200.0),
                 lowpass_hz: tuple[float, float] = (2200.0, 4000.0),
                 delay_ms: tuple[int, int] = (200, 450),
                 pitch_cents: tuple[int, int] = (-700, 700),
                 reverb_reverberance: tuple[int, int] = (0, 99),
                 reverb_damping: tuple[int, int] = (0, 99),
                 reverb_room_size: tuple[int, int] = (0, 99),
                 delay_step_ms: int = 50,
                 pitch_n_fft: int = MAX_N_FFT,
                 **kwargs: Any):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"AudioAugment.sample_rate={sample_rate!r}: expected a positive int")
        self.sample_rate = int(sample_rate)
        self.seed = seed
        self.probabilities = {}
        for op, p in zip(OPS, (polarity_p, noise_p, gain_p, filter_p, delay_p, pitch_p, reverb_p)):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"AudioAugment.{op}_p={p!r}: a probability must lie in [0, 1]")
            self.probabilities[op] = float(p)
        self.noise_std_ratio = _pair("noise_std_ratio", noise_std_ratio)
        self.gain_db = _pair("gain_db", gain_db)
        self.highpass_hz = _pair("highpass_hz", highpass_hz)
        self.lowpass_hz = _pair("lowpass_hz", lowpass_hz)
        self.delay_ms = _pair("delay_ms", delay_ms, integer=True)
        self.pitch_cents = _pair("pitch_cents", pitch_cents, integer=True)
        self.reverb_reverberance = _pair("reverb_reverberance", reverb_reverberance, integer=True)
        self.reverb_damping = _pair("reverb_damping", reverb_damping, integer=True)
        self.reverb_room_size = _pair("reverb_room_size", reverb_room_size, integer=True)
        self.delay_step_ms = int(delay_step_ms)
        self.pitch_n_fft = int(pitch_n_fft)
        self._validate_ranges()
        self.seed_generator = keras.random.SeedGenerator(seed, name="augment_seed")

    def _validate_ranges(self):
        nyquist = self.sample_rate / 2.0
        for name in ("highpass_hz", "lowpass_hz"):
            low, high = getattr(self, name)
            if low <= 0.0 or high >= nyquist:
                raise ValueError(f"AudioAugment.{name}=({low}, {high}): cutoffs must lie in "
                                 f"(0, {nyquist}) Hz at sample_rate={self.sample_rate}")
        if self.noise_std_ratio[0] < 0.0:
            raise ValueError(f"AudioAugment.noise_std_ratio={self.noise_std_ratio}: must be >= 0")
        if self.delay_ms[0] < 0 or self.delay_step_ms <= 0:
            raise ValueError(f"AudioAugment.delay_ms={self.delay_ms}, delay_step_ms="
                             f"{self.delay_step_ms}: need delays >= 0 and a positive step")
        for name in ("reverb_reverberance", "reverb_damping", "reverb_room_size"):
            low, high = getattr(self, name)
            if low < 0 or high > 100:
                raise ValueError(f"AudioAugment.{name}=({low}, {high}): sox takes 0..100 percent")
        if not 16 <= self.pitch_n_fft <= MAX_N_FFT or self.pitch_n_fft % 4:
            raise ValueError(f"AudioAugment.pitch_n_fft={self.pitch_n_fft}: use a multiple of 4 "
                             f"in [16, {MAX_N_FFT}]")

    # Random draws ---------------------------------------------------------------------------

    def sample_parameters(self, x) -> dict:
        """Draws every random choice of the chain for the (batch, length) clips `x`.

        All draws of one call come from one SeedGenerator state, mixed per clip with its position
        and first samples (see mssl_tf.augment.draws: this keeps replicas of a TensorFlow
        distribution strategy from drawing identical parameters). Ops whose probability is 0 are
        left out of the result, and the chain skips them.

        Returns:
          dict with a bool (batch,) mask per active op under its name, plus its parameters:
          noise_std_ratio, noise_key (int32); gain_db; filter_highpass (bool),
          filter_cutoff_hz; delay_ms; pitch_cents; reverb_reverberance, reverb_damping,
          reverb_room_size.
        """
        p = self.probabilities
        if not any(v > 0 for v in p.values()):
            return {}
        keys = draws.clip_keys(self.seed_generator.next(), x)
        u = draws.uniforms(keys, len(_DRAWS))
        column = {name: u[:, i] for i, name in enumerate(_DRAWS)}

        def coin(name, probability):
            return column[name] < probability

        def uniform(name, bounds):
            low, high = bounds
            return low + (high - low) * column[name]

        def whole(name, low, high):
            """Whole numbers uniform in [low, high] inclusive, as float32."""
            return ops.minimum(float(low) + ops.floor(column[name] * (high - low + 1)), float(high))

        params = {}
        if p["polarity"] > 0:
            params["polarity"] = coin("polarity", p["polarity"])
        if p["noise"] > 0:
            params["noise"] = coin("noise", p["noise"])
            params["noise_std_ratio"] = uniform("noise_std_ratio", self.noise_std_ratio)
            params["noise_key"] = draws.key_bits(keys, salt=0x6E6F6973)
        if p["gain"] > 0:
            params["gain"] = coin("gain", p["gain"])
            params["gain_db"] = uniform("gain_db", self.gain_db)
        if p["filter"] > 0:
            params["filter"] = coin("filter", p["filter"])
            # random.randint(0, 1) == 0 picks the high-pass in torchaudio-augmentations.
            params["filter_highpass"] = coin("filter_highpass", 0.5)
            params["filter_cutoff_hz"] = ops.where(params["filter_highpass"],
                                                   uniform("highpass_hz", self.highpass_hz),
                                                   uniform("lowpass_hz", self.lowpass_hz))
        if p["delay"] > 0:
            params["delay"] = coin("delay", p["delay"])
            choices = (self.delay_ms[1] - self.delay_ms[0]) // self.delay_step_ms
            params["delay_ms"] = (self.delay_ms[0]
                                  + self.delay_step_ms * whole("delay_ms", 0, choices))
        if p["pitch"] > 0:
            params["pitch"] = coin("pitch", p["pitch"])
            params["pitch_cents"] = whole("pitch_cents", *self.pitch_cents)
        if p["reverb"] > 0:
            params["reverb"] = coin("reverb", p["reverb"])
            for name in ("reverb_reverberance", "reverb_damping", "reverb_room_size"):
                params[name] = whole(name, *getattr(self, name))
        return params

    # The chain ------------------------------------------------------------------------------

    def apply_parameters(self, x, params: dict):
        """Runs the chain on (batch, length) float32 `x` with the draws of `sample_parameters`."""
        def select(name, transformed, current):
            return ops.where(ops.reshape(params[name], (-1, 1)), transformed, current)

        if "polarity" in params:
            x = select("polarity", aug_ops.polarity_inversion(x), x)
        if "noise" in params:
            unit = aug_ops.counter_normal(params["noise_key"], x.shape[-1])
            x = select("noise", aug_ops.add_noise(x, params["noise_std_ratio"], unit), x)
        if "gain" in params:
            x = select("gain", aug_ops.gain(x, params["gain_db"]), x)
        if "filter" in params:
            low = min(self.highpass_hz[0], self.lowpass_hz[0])
            filtered = aug_ops.high_low_pass(x, params["filter_cutoff_hz"],
                                             params["filter_highpass"], self.sample_rate,
                                             half_size(low, self.sample_rate))
            x = select("filter", filtered, x)
        if "delay" in params:
            offset = aug_ops.delay_offset(params["delay_ms"], self.sample_rate)
            x = select("delay", aug_ops.delay(x, offset), x)
        if "pitch" in params:
            max_cents = max(abs(self.pitch_cents[0]), abs(self.pitch_cents[1]))
            shifted = aug_ops.pitch_shift(x, params["pitch_cents"], max_cents,
                                          sample_rate=self.sample_rate, n_fft=self.pitch_n_fft)
            x = select("pitch", shifted, x)
        if "reverb" in params:
            reverbed = aug_ops.reverb(x, params["reverb_reverberance"], params["reverb_damping"],
                                      params["reverb_room_size"], self.sample_rate)
            x = select("reverb", reverbed, x)
        return x

    def call(self, inputs, training=None):
        """Augments `inputs` (batch, length) when `training` is truthy; identity otherwise."""
        if not training:
            return inputs
        if len(inputs.shape) != 2 or inputs.shape[-1] is None:
            raise ValueError(f"AudioAugment expects (batch, length) clips with a static length, "
                             f"got shape {inputs.shape}; squeeze a channel axis before the layer")
        x = ops.cast(inputs, "float32")
        params = self.sample_parameters(x)
        return ops.cast(self.apply_parameters(x, params), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            **{f"{op}_p": p for op, p in self.probabilities.items()},
            "noise_std_ratio": self.noise_std_ratio,
            "gain_db": self.gain_db,
            "highpass_hz": self.highpass_hz,
            "lowpass_hz": self.lowpass_hz,
            "delay_ms": self.delay_ms,
            "pitch_cents": self.pitch_cents,
            "reverb_reverberance": self.reverb_reverberance,
            "reverb_damping": self.reverb_damping,
            "reverb_room_size": self.reverb_room_size,
            "delay_step_ms": self.delay_step_ms,
            "pitch_n_fft": self.pitch_n_fft,
        })
        return config
