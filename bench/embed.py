"""Tracks/s of `mssl-embed` against the loop a user writes today, in one invocation.

    python bench/embed.py [--tracks 8] [--rounds 3] [--seconds 30] [--workers 2] [--xla]

Both embed the same generated 30 s tracks (44.1 kHz stereo MP3, as user audio usually is) with
the full-size SampleCNN (59,049-sample chunks, 512-d; random weights: speed does not depend on
them) exported by `mssl-export`'s code:
  naive:      for each file: librosa.load(sr=22050, mono=True) + ExportedModel.embed_track
  mssl-embed: mssl_tf.embed.runner.embed_files(workers=2): decode processes, chunks of all
              tracks in batches of 32 (--xla: XLA-compiled)
Both are warmed up (traced) first; mssl-embed's start-up is printed apart. The two alternate in
rounds over the same tracks, so drifting load on a shared machine hits both alike.
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


def sweep(rounds: int) -> None:
    """Inference alone: where batching across tracks and XLA could gain."""
    from bench.common import cpu_description
    from mssl_tf.embed import runner
    from mssl_tf.export import ExportedModel, export_encoder
    from mssl_tf.models import build_sample_cnn
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        export_encoder(build_sample_cnn(), tmp + "/export")
        exported, model = ExportedModel(tmp + "/export"), runner.load_model(tmp + "/export")
        track = rng.uniform(-1, 1, 59049 * 11).astype(np.float32)  # 10 protocol chunks
        fns = {"embed_track (10 chunks)": (lambda: exported.embed_track(track), 10)}
        for b in (10, 32, 64):
            clips = rng.uniform(-1, 1, (b, 59049)).astype(np.float32)
            for xla in (False, True):
                fn = model.batch_inference(b, xla)
                fns[f"batch {b}, xla={xla}"] = ((lambda fn=fn, clips=clips: fn(clips)), b)
        import librosa

        from mssl_tf.embed import audio
        mp3 = make_tracks(tmp, 1, 30.0)[0]
        fns["decode: librosa.load (per track)"] = (
            lambda: librosa.load(mp3, sr=22050, mono=True), 1)
        fns["decode: data tools' decoder (per track)"] = (
            lambda: audio.load_waveform(mp3, 22050), 1)
        for fn, _ in fns.values():
            fn()  # trace / compile
        total = dict.fromkeys(fns, 0.0)
        loads = [os.getloadavg()[0]]
        for _ in range(rounds):
            for name, (fn, n) in fns.items():
                start = time.perf_counter()
                fn()
                total[name] += (time.perf_counter() - start) / n
            loads.append(os.getloadavg()[0])
    print(f"{cpu_description()}; load average {min(loads):.2f}-{max(loads):.2f}")
    base = total["embed_track (10 chunks)"]
    for name, t in total.items():
        if name.startswith("decode"):
            print(f"{name}: {t / rounds * 1000:.1f} ms per 30 s MP3")
        else:
            print(f"{name}: {t / rounds * 1000:.1f} ms/chunk, {base / t:.2f}x embed_track")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=8, help="tracks per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--xla", action="store_true")
    p.add_argument("--sweep", action="store_true",
                   help="instead: ms per chunk of embed_track vs batch sizes 10/32/64, with and "
                        "without XLA, and the two decoders, interleaved in one process")
    args = p.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if args.sweep:
        sweep(args.rounds)
        return
    import librosa

    from bench.common import cpu_description
    from mssl_tf.embed import runner
    from mssl_tf.export import ExportedModel, export_encoder
    from mssl_tf.models import build_sample_cnn

    quiet = open(os.devnull, "w")  # noqa: SIM115
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "audio"))
        paths = make_tracks(os.path.join(tmp, "audio"), args.tracks + 1, args.seconds)
        warm, paths = paths[0], paths[1:]
        export_dir = os.path.join(tmp, "export")
        export_encoder(build_sample_cnn(), export_dir)
        model = ExportedModel(export_dir)
        model.embed_track(librosa.load(warm, sr=22050, mono=True)[0])  # warm-up: trace
        start = time.perf_counter()
        emb = runner.load_model(export_dir)
        runner.embed_files([warm], os.path.join(tmp, "warm.npz"), emb, workers=args.workers,
                           batch_size=args.batch_size, xla=args.xla, stream=quiet)
        startup_s = time.perf_counter() - start
        naive_s = tool_s = 0.0
        rows = []
        # Interleaved rounds: on a shared machine the load drifts; A and B see the same drift.
        for r in range(args.rounds):
            start = time.perf_counter()
            naive = [model.embed_track(librosa.load(path, sr=22050, mono=True)[0])
                     for path in paths]
            a = time.perf_counter() - start
            start = time.perf_counter()
            out = os.path.join(tmp, f"out{r}.npz")
            runner.embed_files(paths, out, emb, workers=args.workers, xla=args.xla,
                               batch_size=args.batch_size, stream=quiet)
            b = time.perf_counter() - start
            naive_s, tool_s = naive_s + a, tool_s + b
            rows.append((a, b))
            loads.append(os.getloadavg()[0])
        d = np.load(out)
        order = [list(d["path"]).index(p) for p in paths]
        diff = float(np.abs(d["embedding"][order] - np.stack(naive)).max())
    n = len(paths) * args.rounds
    print(f"{cpu_description()}; load average {min(loads):.2f}-{max(loads):.2f}")
    print(f"{args.rounds} rounds x {len(paths)} tracks of {args.seconds:.0f} s (44.1 kHz stereo "
          "MP3), full SampleCNN")
    print(f"naive loop (librosa.load + embed_track): {naive_s:.1f} s, {n / naive_s:.3f} tracks/s")
    print(f"mssl-embed ({args.workers} workers, batch {args.batch_size}, xla={args.xla}): "
          f"{tool_s:.1f} s, {n / tool_s:.3f} tracks/s; its start-up (load, trace, first "
          f"track) {startup_s:.1f} s, not included")
    print("per round (naive / mssl-embed): " + ", ".join(f"{a / b:.2f}x" for a, b in rows))
    print(f"speed-up: {naive_s / tool_s:.2f}x; max |embedding difference| {diff:.2e} "
          "(librosa.load's soxr_hq vs the data tools' soxr HQ)")


if __name__ == "__main__":
    main()
