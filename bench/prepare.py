"""Conversion speed of `mssl-prepare` against CLMR's ffmpeg preprocessing, on the same files.

    python bench/prepare.py [--tracks 20] [--core 0] [--json results.json]

Generates 30 s MP3 files of two kinds: MTAT-like (16 kHz mono, 32 kbps) and FMA-like (44.1 kHz
stereo, ~256 kbps), then measures on ONE core (the process and its children pinned to `--core`):
  * ours: soundfile decode -> mono -> soxr HQ to 22,050 Hz -> int16 -> serialized tf.train.Example
    (data_tools.audio_io.process_track + tfrecord_lib.encode_record), tracks/s;
  * baseline (CLMR preprocess.py): one `ffmpeg -i x.mp3 -ar 22050 x.wav` process per file, then
    reading the WAV with soundfile, tracks/s. Skipped with a message when ffmpeg is not installed.
Then a full `tfrecord_lib.convert` with 2 worker processes (peak RSS of a worker, tracks/s).
Targets (issue): ours >= 4x the baseline on MTAT-like and >= 3x on FMA-like files, per core; peak
memory per worker < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KINDS = {  # name: (sample rate, channels, LAME compression level: 1.0 = smallest bitrate)
    "mtat_like_16k_mono": (16000, 1, 0.95),
    "fma_like_44k_stereo": (44100, 2, 0.2),
}


def music_like(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """Broadband test signal (chords + filtered noise bursts) so the MP3 carries real content."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    notes = rng.uniform(110, 880, size=4)
    x = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in notes)
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(8) / 8, mode="same")
    x = x + 0.05 * noise * (np.sin(2 * np.pi * 2 * t) > 0)
    cols = [x * (1.0 - 0.3 * c) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def make_files(folder: str, kind: str, count: int) -> list[str]:
    rate, channels, level = KINDS[kind]
    paths = []
    for i in range(count):
        path = os.path.join(folder, kind, f"{i:03d}.mp3")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sf.write(path, music_like(30.0, rate, channels, i), rate, format="MP3",
                 bitrate_mode="CONSTANT", compression_level=level)
        paths.append(path)
    return paths


def bench_ours(paths: list[str]) -> float:
    from data_tools import audio_io, tfrecord_lib
    from mssl_tf.data import features
    for path in paths[:2]:  # warm-up (imports, soxr plans)
        audio_io.process_track(audio_io.TrackSpec(path, "w", "train"), features.SAMPLE_RATE, 1)
    start = time.perf_counter()
    for i, path in enumerate(paths):
        result = audio_io.process_track(audio_io.TrackSpec(path, str(i), "train"),
                                        features.SAMPLE_RATE, features.CROP_LEN)
        tfrecord_lib.encode_record(result)
    return len(paths) / (time.perf_counter() - start)


def bench_ffmpeg(paths: list[str], tmp: str) -> float | None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("baseline skipped: ffmpeg is not installed (apt-get install ffmpeg)")
        return None
    start = time.perf_counter()
    for i, path in enumerate(paths):
        wav = os.path.join(tmp, f"{i}.wav")
        subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", path, "-ar", "22050",
                        wav], check=True)
        sf.read(wav, dtype="float32")
    return len(paths) / (time.perf_counter() - start)


def _decode_and_report_peak(path: str) -> float:
    """Runs one track as a conversion worker does; returns this process's peak RSS in MB."""
    from data_tools import audio_io
    result = audio_io.process_track(audio_io.TrackSpec(path, "x", "train"), 22050, 59049)
    assert isinstance(result, audio_io.DecodedTrack), result
    return audio_io.peak_rss_mb()


def bench_convert(paths: list[str], out: str, workers: int) -> dict:
    import multiprocessing

    from data_tools import tfrecord_lib
    from data_tools.datasets import folder
    listing = folder.list_tracks(os.path.dirname(paths[0]), name="bench")
    start = time.perf_counter()
    tfrecord_lib.convert(listing, out, workers=workers, progress=False, overwrite=True)
    seconds = time.perf_counter() - start
    # The same work in a pool of the same kind of worker processes, reporting their peak RSS.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        peak_mb = max(pool.map(_decode_and_report_peak, paths, chunksize=1))
    return {"tracks_per_s": len(paths) / seconds, "workers": workers,
            "peak_worker_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin the timing to")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    results = {"cpu": os.cpu_count(), "tracks": args.tracks}
    with tempfile.TemporaryDirectory() as tmp:
        files = {kind: make_files(tmp, kind, args.tracks) for kind in KINDS}
        all_cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {args.core})  # children (ffmpeg) inherit the single core
        for kind, paths in files.items():
            ours = bench_ours(paths)
            base = bench_ffmpeg(paths, tmp)
            results[kind] = {"ours_tracks_per_s_per_core": round(ours, 1),
                             "ffmpeg_tracks_per_s_per_core": base and round(base, 1),
                             "speedup": base and round(ours / base, 2)}
            print(f"{kind}: ours {ours:.1f} tracks/s/core, ffmpeg baseline "
                  f"{'skipped' if base is None else f'{base:.1f}'}"
                  f"{'' if base is None else f', speed-up {ours / base:.2f}x'}")
        os.sched_setaffinity(0, all_cores)
        workers = min(2, len(all_cores))
        conv = bench_convert(files["fma_like_44k_stereo"], os.path.join(tmp, "out"), workers)
        results["convert_fma_like"] = {k: round(v, 1) for k, v in conv.items()}
        print(f"convert (fma-like, {workers} workers, writing shards): "
              f"{conv['tracks_per_s']:.1f} tracks/s, "
              f"peak worker RSS {conv['peak_worker_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
