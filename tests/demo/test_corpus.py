"""The demo corpus: timbres and rhythms measured by FFT, the folder layout and its labels."""

import csv
import os

import numpy as np
import soundfile as sf

from mssl_tf.demo import corpus

SR = corpus.SAMPLE_RATE


def _harmonic_levels(x, f0, count=4):
    """Magnitude of the spectrum at the first `count` harmonics of f0 (Hann window)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return np.array([spec[np.abs(freqs - f0 * h) < 6].max() for h in range(1, count + 1)])


def test_wind_has_odd_harmonics_and_bowed_all_of_them():
    rng = np.random.default_rng(0)
    wind = _harmonic_levels(corpus._note("wind", 220.0, SR, rng), 220.0)
    bowed = _harmonic_levels(corpus._note("bowed", 220.0, SR, rng), 220.0)
    assert wind[1] < 0.1 * wind[2] and wind[3] < 0.1 * wind[2]  # 2nd and 4th nearly absent
    assert bowed[1] > 0.3 * bowed[2] and bowed[3] > 0.3 * bowed[2]


def test_keys_and_plucked_decay_while_bowed_sustains():
    rng = np.random.default_rng(1)
    n = SR  # a one-second note
    for family, most in (("plucked", 0.01), ("keys", 0.3), ("bowed", 1.5)):
        x = corpus._note(family, 330.0, n, rng)
        late, early = np.sqrt(np.mean(x[n // 2:-2000] ** 2)), np.sqrt(np.mean(x[:n // 4] ** 2))
        assert late < most * early, family
    x = corpus._note("bowed", 330.0, n, rng)
    assert np.sqrt(np.mean(x[n // 2:-2000] ** 2)) > 0.8 * np.sqrt(np.mean(x[SR // 8:n // 4] ** 2))


def test_drum_pattern_repeats_at_the_beat():
    beat = 8800  # ~150 BPM, a whole number of 100-sample frames
    x = corpus._drums(8 * beat, beat, np.random.default_rng(2))
    env = np.abs(x).reshape(-1, 100).mean(axis=1)  # 100-sample frames
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1:]
    lag = beat // 100
    # Strongest periodicity away from lag 0 at one or two beats (kick/snare alternate).
    best = np.argmax(ac[lag // 2 + 1:3 * lag]) + lag // 2 + 1
    assert min(abs(best - lag), abs(best - 2 * lag)) <= 1


def test_clips_are_deterministic_normalised_and_long_enough():
    tags = {"family": "keys", "tempo": "fast", "mode": "minor", "drums": True, "bass": True}
    a = corpus.synth_clip(tags, 10.0, np.random.default_rng(3))
    b = corpus.synth_clip(tags, 10.0, np.random.default_rng(3))
    assert a.dtype == np.float32 and a.shape == (10 * SR,)
    np.testing.assert_array_equal(a, b)
    assert 0.85 < np.abs(a).max() <= 0.9


def test_write_corpus_folder_layout_and_balanced_tags(tmp_path):
    made = corpus.write_corpus(str(tmp_path), counts={"train": 8, "valid": 8}, seconds=10.0,
                               progress=False)
    with open(made["labels_csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16 and [r["split"] for r in rows] == ["train"] * 8 + ["valid"] * 8
    for split in ("train", "valid"):
        tags = [set(r["labels"].split(";")) for r in rows if r["split"] == split]
        for tag in ("keys", "plucked", "bowed", "wind", "slow", "fast", "major", "minor"):
            assert 0 < sum(tag in t for t in tags) < len(tags), (split, tag)  # both classes
        assert all(len(t & set(corpus.FAMILIES)) == 1 for t in tags)
        assert all(len(t & {"slow", "fast"}) == 1 and len(t & {"major", "minor"}) == 1
                   for t in tags)
    for r in rows:
        info = sf.info(os.path.join(str(tmp_path), r["path"]))
        assert info.samplerate == SR and info.channels == 1 and info.duration >= 10.0
        assert r["path"].split("/")[0] in r["labels"].split(";")  # folder = family


def test_default_test_split_is_big_and_balanced_enough_to_not_be_noise():
    counts = corpus.DEFAULT_COUNTS
    assert counts["test"] >= 64 and counts["train"] >= 64 and counts["valid"] >= 32
    # The tags clip_tags gives the test clips (indices after train and valid), without audio.
    rng = np.random.default_rng(0)
    tags = [corpus.tag_list(corpus.clip_tags(i, rng)) for i in range(sum(counts.values()))]
    test = tags[counts["train"] + counts["valid"]:]
    for tag in corpus.TAGS:
        positives = sum(tag in t for t in test)
        assert 12 <= positives <= len(test) - 12, (tag, positives)
