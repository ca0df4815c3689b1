"""Tracks/s of `mssl-embed` against the loop a user writes today, in one invocation.

    python bench/embed.py [--tracks 16] [--seconds 30] [--workers 2]

Both embed the same generated 30 s tracks (44.1 kHz stereo MP3, as user audio usually is) with
the full-size SampleCNN (59,049-sample chunks, 512-d; random weights: speed does not depend on
them) exported by `mssl-export`'s code:
  naive:      for each file: librosa.load(sr=22050, mono=True) + ExportedModel.embed_track
  mssl-embed: mssl_tf.embed.runner.embed_files(workers=2): decode processes, chunks of all
              tracks in batches of 32, XLA (its compile time included)
The naive loop gets one warm-up call before timing; the ratio is the figure to report.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def make_tracks(folder: str, count: int, seconds: float) -> list[str]:
    """`count` MP3s of noise plus tones, 44.1 kHz stereo."""
    import soundfile as sf
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        n = int(seconds * 44100)
        t = np.arange(n) / 44100
        wave = 0.3 * np.sin(2 * np.pi * (110 + 37 * i) * t)[:, None] + rng.normal(0, 0.05, (n, 2))
        path = os.path.join(folder, f"track{i:03d}.mp3")
        sf.write(path, wave.astype(np.float32), 44100, format="MP3")
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=32)
    args = p.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import librosa

    from bench.common import cpu_description
    from mssl_tf.embed import runner
    from mssl_tf.export import ExportedModel, export_encoder
    from mssl_tf.models import build_sample_cnn

    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "audio"))
        paths = make_tracks(os.path.join(tmp, "audio"), args.tracks + 1, args.seconds)
        warm, paths = paths[0], paths[1:]
        export_dir = os.path.join(tmp, "export")
        export_encoder(build_sample_cnn(), export_dir)
        model = ExportedModel(export_dir)
        model.embed_track(librosa.load(warm, sr=22050, mono=True)[0])  # warm-up
        start = time.perf_counter()
        naive = []
        for path in paths:
            wave, _ = librosa.load(path, sr=22050, mono=True)
            naive.append(model.embed_track(wave))
        naive_s = time.perf_counter() - start

        start = time.perf_counter()
        emb = runner.load_model(export_dir)
        summary = runner.embed_files(paths, os.path.join(tmp, "out.npz"), emb,
                                     workers=args.workers, batch_size=args.batch_size,
                                     stream=open(os.devnull, "w"))
        tool_s = time.perf_counter() - start
        out = np.load(os.path.join(tmp, "out.npz"))
        order = [list(out["path"]).index(p) for p in paths]
        diff = float(np.abs(out["embedding"][order] - np.stack(naive)).max())
    n = len(paths)
    print(f"{cpu_description()}; load average {os.getloadavg()[0]:.2f}")
    print(f"{n} tracks of {args.seconds:.0f} s (44.1 kHz stereo MP3), full SampleCNN")
    print(f"naive loop (librosa.load + embed_track): {naive_s:.1f} s, {n / naive_s:.3f} tracks/s")
    print(f"mssl-embed ({args.workers} workers, batch {args.batch_size}, XLA, compile included): "
          f"{tool_s:.1f} s, {n / tool_s:.3f} tracks/s ({summary['embedded']} embedded)")
    print(f"speed-up: {naive_s / tool_s:.2f}x; max |embedding difference| {diff:.2e} "
          "(librosa's resampler vs the data tools' soxr HQ)")


if __name__ == "__main__":
    main()
