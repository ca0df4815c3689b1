"""A procedurally generated, labelled music corpus, so the whole pipeline runs without downloads.

Each clip is a short piece of synthesised music: a melody in a major or minor key played by one
instrument family, optionally over a bass line and a drum pattern, at a slow or fast tempo. Its
tags say which of those it is, in the spirit of MagnaTagATune's multi-label tags:

  instrument family (exactly one): keys, plucked, bowed, wind
  tempo (exactly one):             slow (66-88 BPM), fast (132-168 BPM)
  mode (exactly one):              major, minor
  accompaniment (any):             drums, bass

The families differ the way real ones do for a raw-waveform encoder: harmonic spectra (odd-only
for the wind, 1/h for bowed, bright and fast-decaying for plucked), attack and decay envelopes,
vibrato and breath noise. Clips are written as 16-bit WAV files in the `mssl-prepare folder`
layout, with a labels.csv (`path,labels,split`).
"""

from __future__ import annotations

import csv
import os

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from mssl_tf import constants

SAMPLE_RATE = constants.SAMPLE_RATE
FAMILIES = ("keys", "plucked", "bowed", "wind")
TEMPI = {"slow": (66.0, 88.0), "fast": (132.0, 168.0)}
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
TAGS = (*FAMILIES, "slow", "fast", "major", "minor", "drums", "bass")
# Clips per split of the demo. The test split is what the demo's ROC-AUC is averaged over: with
# 64 clips each tag has ~16-32 positives, so one clip moves a tag's ROC-AUC by ~0.1-0.2 points
# and the macro average's seed-to-seed spread is a point or two, below the gains it measures
# (with 16 test clips, 4 positives for a family, the floor alone moved by several points).
DEFAULT_COUNTS = {"train": 64, "valid": 32, "test": 64}


def _harmonics(family: str) -> np.ndarray:
    """Relative amplitudes of the first 10 harmonics of an instrument family."""
    h = np.arange(1, 11, dtype=np.float64)
    if family == "keys":
        return 1.0 / h ** 1.5
    if family == "plucked":
        return 1.0 / h ** 0.7
    if family == "bowed":
        return 1.0 / h
    return np.where(h % 2 == 1, 1.0 / h ** 1.2, 0.05 / h)  # wind: odd harmonics (clarinet-like)


def _envelope(family: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Amplitude envelope of one note of `n` samples."""
    t = np.arange(n) / SAMPLE_RATE
    if family == "keys":
        env = np.exp(-t * rng.uniform(2.5, 4.0))
        attack = 0.005
    elif family == "plucked":
        env = np.exp(-t * rng.uniform(7.0, 10.0))
        attack = 0.002
    elif family == "bowed":
        env = np.ones(n)
        attack = 0.08
    else:
        env = 0.9 + 0.1 * np.sin(2 * np.pi * 3.0 * t)
        attack = 0.05
    env = env * np.minimum(t / attack, 1.0)
    release = min(n, int(0.02 * SAMPLE_RATE))  # no clicks at the note end
    env[n - release:] *= np.linspace(1.0, 0.0, release)
    return env


def _note(family: str, freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """One note of an instrument family: additive harmonics, envelope, vibrato and noise."""
    t = np.arange(n) / SAMPLE_RATE
    vibrato = 0.0
    if family in ("bowed", "wind"):
        vibrato = 0.004 * np.sin(2 * np.pi * rng.uniform(4.5, 6.0) * t) * np.minimum(t / 0.3, 1.0)
    phase = 2 * np.pi * freq * (t + np.cumsum(vibrato) / SAMPLE_RATE)
    amps = _harmonics(family)
    x = np.zeros(n)
    for h, a in enumerate(amps, start=1):
        if freq * h >= SAMPLE_RATE / 2 - 500:
            break
        decay = np.exp(-t * 6.0 * (h - 1)) if family in ("keys", "plucked") else 1.0
        x += a * decay * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    if family == "wind":  # breath noise
        x += 0.03 * rng.standard_normal(n)
    return x * _envelope(family, n, rng)


def _drums(n: int, beat: int, rng: np.random.Generator) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, closed hi-hat on every eighth note."""
    out = np.zeros(n)
    kick_len, snare_len, hat_len = int(0.25 * SAMPLE_RATE), int(0.18 * SAMPLE_RATE), 1200
    t = np.arange(kick_len) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t * 30)) / 30)) * np.exp(-t * 14)
    ts = np.arange(snare_len) / SAMPLE_RATE
    snare = (0.6 * rng.standard_normal(snare_len) + 0.4 * np.sin(2 * np.pi * 190 * ts)) * \
        np.exp(-ts * 22)
    hat = rng.standard_normal(hat_len) * np.exp(-np.arange(hat_len) / 250.0)
    hat = np.diff(hat, prepend=0.0)  # crude high-pass: hi-hats are bright
    for i, start in enumerate(range(0, n, beat)):
        hit = kick if i % 2 == 0 else snare
        end = min(n, start + len(hit))
        out[start:end] += 0.8 * hit[:end - start]
    for start in range(0, n, beat // 2):
        end = min(n, start + hat_len)
        out[start:end] += 0.25 * hat[:end - start]
    return out


def synth_clip(tags: dict, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A mono float32 clip in [-1, 1] with the musical properties named by `tags`.

    Args:
      tags: {"family": str, "tempo": "slow"|"fast", "mode": "major"|"minor", "drums": bool,
        "bass": bool}.
      seconds: clip length.
      rng: random generator (melody, tonic, tempo within its range, timbre details).
    """
    n = int(seconds * SAMPLE_RATE)
    bpm = rng.uniform(*TEMPI[tags["tempo"]])
    beat = int(round(60.0 / bpm * SAMPLE_RATE))
    scale = MODES[tags["mode"]]
    tonic = int(rng.integers(55, 67))  # MIDI G3..F#4
    melody = np.zeros(n)
    pos, degree = 0, 0
    while pos < n:
        dur = beat * int(rng.choice([1, 1, 2])) // (2 if rng.random() < 0.3 else 1)
        # Stepwise motion with occasional leaps, returning to the tonic at times.
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, 4]), -3, 9))
        if rng.random() < 0.15:
            degree = 0
        octave, step = divmod(degree, 7)
        midi = tonic + 12 * octave + scale[step]
        end = min(n, pos + dur)
        melody[pos:end] += _note(tags["family"], 440.0 * 2 ** ((midi - 69) / 12), end - pos, rng)
        pos = end
    mix = melody / (np.abs(melody).max() + 1e-9)
    if tags["bass"]:
        bass = np.zeros(n)
        roots = [0, 5, 3, 4]  # scale degrees I-vi-IV-V (i-VI-iv-v in minor)
        for i, start in enumerate(range(0, n, 2 * beat)):
            midi = tonic - 24 + scale[roots[(i // 2) % 4]]
            end = min(n, start + 2 * beat)
            bass[start:end] += _note("plucked", 440.0 * 2 ** ((midi - 69) / 12), end - start, rng)
        mix += 0.6 * bass / (np.abs(bass).max() + 1e-9)
    if tags["drums"]:
        drums = _drums(n, beat, rng)
        mix += 0.5 * drums / (np.abs(drums).max() + 1e-9)
    mix += 0.003 * rng.standard_normal(n)
    return (0.89 * mix / np.abs(mix).max()).astype(np.float32)


def clip_tags(i: int, rng: np.random.Generator) -> dict:
    """Balanced tags for clip `i`: every 8 consecutive clips hold each family at both tempi and
    in both modes (so even a small split has positives and negatives of every tag); drums and
    bass are drawn at random."""
    return {"family": FAMILIES[i % len(FAMILIES)], "tempo": "slow" if (i // 4) % 2 else "fast",
            "mode": "minor" if (i + i // 4) % 2 else "major", "drums": bool(rng.random() < 0.5),
            "bass": bool(rng.random() < 0.5)}


def tag_list(tags: dict) -> list[str]:
    """The tag names of a clip, in TAGS order."""
    names = [tags["family"], tags["tempo"], tags["mode"]]
    names += [t for t in ("drums", "bass") if tags[t]]
    return [t for t in TAGS if t in names]


def write_corpus(out_dir: str, *, counts: dict[str, int] | None = None, seconds: float = 10.0,
                 seed: int = 0, progress: bool = True) -> dict:
    """Writes the demo corpus as WAV files + labels.csv in the `mssl-prepare folder` layout.

    Args:
      out_dir: output folder; clips go to `<out_dir>/<family>/clip_NNN.wav`.
      counts: clips per split, default DEFAULT_COUNTS (64 / 32 / 64).
      seconds: length of every clip (>= 10 s by default, like real excerpts).
      seed: random seed; the same seed writes the same audio.
      progress: show a progress bar.

    Returns:
      {"labels_csv": path, "clips": [(relative path, tags, split)], "tag_names": TAGS}.
    """
    counts = counts or DEFAULT_COUNTS
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    total = sum(counts.values())
    bar = tqdm(total=total, desc="synthesise clips", unit="clip", disable=not progress)
    i = 0
    for split, count in counts.items():
        for _ in range(count):
            tags = clip_tags(i, rng)
            relative = f"{tags['family']}/clip_{i:03d}.wav"
            os.makedirs(os.path.join(out_dir, tags["family"]), exist_ok=True)
            audio = synth_clip(tags, seconds, rng)
            sf.write(os.path.join(out_dir, relative), audio, SAMPLE_RATE, subtype="PCM_16")
            rows.append((relative, tag_list(tags), split))
            i += 1
            bar.update()
    bar.close()
    labels_csv = os.path.join(out_dir, "labels.csv")
    with open(labels_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels", "split"])
        for relative, names, split in rows:
            writer.writerow([relative, ";".join(names), split])
    return {"labels_csv": labels_csv, "clips": rows, "tag_names": list(TAGS)}
