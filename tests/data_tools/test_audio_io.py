"""Tests of the decode stage: formats, downmix, resampling (measured by FFT), int16, bad files."""

import os

import numpy as np
import pytest
import soundfile as sf

from data_tools import audio_io
from mssl_tf.data import features
from tests.data_tools import fixtures

SR = features.SAMPLE_RATE


def peak_hz(x: np.ndarray, rate: int) -> float:
    """Frequency of the largest FFT bin (Hann window)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def spec(path, split="train"):
    return audio_io.TrackSpec(path=str(path), track_id=os.path.basename(str(path)), split=split)


@pytest.mark.parametrize("ext,rate,channels", [
    (".wav", 22050, 1), (".wav", 44100, 2), (".wav", 48000, 1), (".au", 16000, 1),
    (".mp3", 16000, 1), (".mp3", 44100, 2), (".flac", 32000, 2), (".ogg", 22050, 1)])
def test_process_track_formats_rates_and_channels(tmp_path, ext, rate, channels):
    path = fixtures.write_audio(str(tmp_path / f"x{ext}"), 3.0, rate, 1000.0, channels)
    result = audio_io.process_track(spec(path), SR, features.CROP_LEN)
    assert isinstance(result, audio_io.DecodedTrack), result
    assert result.pcm.dtype == np.int16 and result.pcm.ndim == 1
    assert (result.source_rate, result.source_channels) == (rate, channels)
    # Length: exactly 3 s at 22,050 Hz for PCM formats; MP3/OGG decoders may add codec padding.
    tolerance = 0 if ext in (".wav", ".au", ".flac") else 2400
    assert abs(len(result.pcm) - 3 * SR) <= tolerance
    x = result.pcm.astype(np.float64) / 32768.0
    assert abs(peak_hz(x, SR) - 1000.0) < 1.0
    # Level: a 0.3 sine (second channel at 0.15 is averaged in) -> RMS 0.3/sqrt(2) or 0.225/sqrt(2).
    expected_rms = (0.3 if channels == 1 else 0.225) / np.sqrt(2)
    middle = x[SR // 2: -SR // 2]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(expected_rms, rel=0.03)
    assert result.clipped == 0 and not result.silent


def test_downmix_is_channel_mean():
    rng = np.random.default_rng(0)
    for channels in (1, 2, 3, 6):
        audio = rng.uniform(-1, 1, size=(1000, channels)).astype(np.float32)
        np.testing.assert_allclose(audio_io.to_mono(audio), audio.mean(axis=1), atol=1e-6)


def test_resample_removes_content_above_new_nyquist():
    # 44.1 kHz with tones at 3 kHz and 15 kHz: after resampling to 22,050 Hz the 15 kHz tone
    # (above the new 11,025 Hz Nyquist) must be filtered, not aliased to 7,050 Hz.
    rate = 44100
    t = np.arange(rate * 2) / rate
    x = 0.4 * np.sin(2 * np.pi * 3000 * t) + 0.4 * np.sin(2 * np.pi * 15000 * t)
    x = x.astype(np.float32)
    y = audio_io.resample(x, rate, SR)
    assert len(y) == 2 * SR
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / SR)
    at = lambda f: spectrum[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert 20 * np.log10(at(7050) / at(3000)) < -90  # alias suppressed by > 90 dB


def test_resample_upsampling_keeps_frequency_and_level():
    rate = 16000
    t = np.arange(rate * 2) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = audio_io.resample(x, rate, SR)
    assert len(y) == 2 * SR
    assert abs(peak_hz(y, SR) - 440.0) < 0.6
    assert np.max(np.abs(y[1000:-1000])) == pytest.approx(0.5, abs=0.002)


def test_to_int16_matches_schema_conversion():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.3, 1.3, size=5000).astype(np.float32)
    x[:4] = [1.0, -1.0, 1.00002, -1.00006]
    ours, ours_clipped = audio_io.to_int16(x)
    ref, ref_clipped = features.float_to_int16(x)
    np.testing.assert_array_equal(ours, ref)
    assert ours_clipped == ref_clipped == int(np.sum(np.round(x * 32767) > 32767)
                                              + np.sum(np.round(x * 32767) < -32768))


def test_clipping_is_counted(tmp_path):
    path = str(tmp_path / "loud.wav")
    sf.write(path, np.full(70000, 0.9, np.float32), SR, subtype="FLOAT")
    with sf.SoundFile(path, "r+") as f:  # push 100 samples beyond full scale
        f.seek(1000)
        f.write(np.full(100, 1.5, np.float32))
    result = audio_io.process_track(spec(path), SR, features.CROP_LEN)
    assert result.clipped == 100
    assert result.pcm.max() == 32767


@pytest.mark.parametrize("writer,reason", [
    (fixtures.write_empty, "empty file (0 bytes)"),
    (fixtures.write_text, "not decodable audio"),
    (fixtures.write_corrupt_mp3, "not decodable audio"),
    (fixtures.write_corrupt_wav, "not decodable audio"),
])
def test_bad_files_are_skipped_with_reason(tmp_path, writer, reason):
    name = "bad.wav" if writer is fixtures.write_corrupt_wav else "bad.mp3"
    path = writer(str(tmp_path / name))
    result = audio_io.process_track(spec(path), SR, features.CROP_LEN)
    assert isinstance(result, audio_io.SkippedTrack)
    assert result.reason.startswith(reason)


def test_missing_file_is_skipped(tmp_path):
    result = audio_io.process_track(spec(tmp_path / "nope.wav"), SR, features.CROP_LEN)
    assert isinstance(result, audio_io.SkippedTrack) and result.reason == "file not found"


def test_short_audio_is_skipped_at_the_crop_boundary(tmp_path):
    # 59,049 samples at 22,050 Hz is the shortest track that gives one crop.
    ok = str(tmp_path / "ok.wav")
    short = str(tmp_path / "short.wav")
    sf.write(ok, np.full(features.CROP_LEN, 0.1, np.float32), SR)
    sf.write(short, np.full(features.CROP_LEN - 1, 0.1, np.float32), SR)
    assert len(audio_io.process_track(spec(ok), SR, features.CROP_LEN).pcm) == features.CROP_LEN
    skipped = audio_io.process_track(spec(short), SR, features.CROP_LEN)
    assert isinstance(skipped, audio_io.SkippedTrack)
    assert skipped.reason.startswith("too short: 59048 samples")


def test_silent_audio_is_kept_and_flagged(tmp_path):
    path = fixtures.write_audio(str(tmp_path / "silent.wav"), 3.0, 44100, amplitude=0.0)
    result = audio_io.process_track(spec(path), SR, features.CROP_LEN)
    assert isinstance(result, audio_io.DecodedTrack) and result.silent
    assert not np.any(result.pcm)


def test_duration_seconds(tmp_path):
    path = fixtures.write_audio(str(tmp_path / "a.flac"), 2.5, 48000)
    assert audio_io.duration_seconds(path) == pytest.approx(2.5)
    assert audio_io.duration_seconds(fixtures.write_text(str(tmp_path / "t.wav"))) == 0.0


def test_unexpected_errors_become_skips(tmp_path, monkeypatch):
    path = fixtures.write_audio(str(tmp_path / "a.wav"), 3.0, 44100)

    def broken_resampler(*args, **kwargs):
        raise MemoryError("resampler out of memory")

    monkeypatch.setattr(audio_io.soxr, "resample", broken_resampler)
    result = audio_io.process_track(spec(path), SR, features.CROP_LEN)
    assert isinstance(result, audio_io.SkippedTrack)
    assert result.reason == ("unexpected error while converting: MemoryError: resampler out of "
                             "memory")
