"""SavedModel export of a pre-trained encoder (and optionally its probe head).

Layout written by `export_run` / `mssl-export --out OUT`:
  OUT/saved_model/     the SavedModel; signatures (all visible to TF Serving):
                         embed        waveform float32 [batch, crop_len]
                                      -> embedding [batch, rep_dim]
                         embed_track  waveform float32 [samples]        -> embedding [rep_dim],
                                      num_chunks int32 []
                         embed_chunks waveform float32 [samples]        -> embeddings
                                      [chunks, rep_dim], offsets int64 [chunks] (samples)
                         tag          waveform float32 [samples]        -> probabilities [tags],
                                      tag_names string [tags]           (only with a probe)
                         tag_chunks   waveform float32 [samples]        -> probabilities
                                      [chunks, tags], offsets, tag_names (only with a probe)
                       `serving_default` is `embed`. Every signature refuses NaN/Inf samples
                       with an InvalidArgumentError saying so (an in-graph check).
  OUT/encoder.keras    the encoder for `keras.models.load_model` (and the probe head as
                       OUT/probe_head.keras when a probe is given)
  OUT/export.json      sample rate, crop length, rep_dim, tag names, where the weights came from

Whole tracks are cut as in the test protocol (`mssl_tf.data.crops.chunk_track`):
non-overlapping chunks of `crop_len` samples, the last one dropped, and the mean taken over chunks
(of embeddings for `embed_track`, of sigmoid/softmax probabilities for `tag`, as CLMR scores a
track). A track of exactly one chunk length would have no chunk left after the drop, so it is
embedded as that single chunk. Waveforms are mono at 22,050 Hz, float32 in [-1, 1].
"""

from __future__ import annotations

import datetime
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from mssl_tf import fileio, rundir
from mssl_tf.data import crops, features
from mssl_tf.models import build_probe_head
from mssl_tf.version import __version__

logger = logging.getLogger(__name__)

SAVED_MODEL_DIR = "saved_model"
ENCODER_FILE = "encoder.keras"
HEAD_FILE = "probe_head.keras"
INFO_FILE = "export.json"
# Chunks per encoder call inside `embed_track` / `tag`: bounds the memory of long tracks
# (a 10-minute track has ~224 chunks; the full SampleCNN needs ~10 MB of activations per chunk).
CHUNK_BATCH = 16
SIGNATURES = ["embed", "embed_track", "embed_chunks"]
TAG_SIGNATURES = ["tag", "tag_chunks"]  # only with a probe head


def load_probe(probe_dir: str, rep_dim: int) -> tuple[keras.Model, dict]:
    """Rebuilds a probe head written by `mssl_tf.eval.probe` (results.json + head.weights.h5).

    Args:
      probe_dir: the probe's output folder, e.g. RUN/probes/mtat-epoch00300/linear.
      rep_dim: width of the encoder the head must sit on.

    Returns:
      (head, results) where head maps (batch, rep_dim) features to logits and results is the
      probe's results.json.

    Raises:
      FileNotFoundError: no results.json or head weights in `probe_dir`.
      ValueError: the head does not fit an encoder of width `rep_dim`.
    """
    results_path = os.path.join(probe_dir, "results.json")
    weights_path = os.path.join(probe_dir, "head.weights.h5")
    for path in (results_path, weights_path):
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"--probe {probe_dir!r} is not a probe folder (no {os.path.basename(path)}); "
                "pass the folder `mssl-probe` wrote, e.g. "
                "RUN/probes/<dataset>-<checkpoint>/linear.")
    results = fileio.read_json(results_path)
    tag_names = [str(t) for t in results.get("tag_names") or []]
    if not tag_names:
        raise ValueError(f"{results_path} lists no tag names; re-run `mssl-probe` with this "
                         "version.")
    probe_rep_dim = (results.get("pretrain") or {}).get("rep_dim")
    if probe_rep_dim is not None and int(probe_rep_dim) != rep_dim:
        raise ValueError(
            f"The probe in {probe_dir!r} was trained on {probe_rep_dim}-d features but the encoder "
            f"being exported gives {rep_dim}-d ones; pass a probe of this run (--probe "
            "RUN/probes/...).")
    settings = results.get("settings") or {}
    head = build_probe_head(results.get("head", "linear"), input_dim=rep_dim,
                            num_labels=len(tag_names), hidden=settings.get("hidden"))
    try:
        rundir.load_weights(head, weights_path)
    except ValueError as e:
        raise ValueError(f"The probe head {weights_path!r} does not fit a {rep_dim}-d encoder with "
                         f"{len(tag_names)} tags: {e}") from e
    return head, results


NONFINITE_MESSAGE = (
    "the waveform contains NaN or Inf samples, which would make every output meaningless; "
    "replace them (e.g. numpy.nan_to_num) or check the decoder that produced the audio")


def _finite(waveform: tf.Tensor) -> tf.Tensor:
    """`waveform`, with an in-graph check that fails on NaN/Inf samples (every signature)."""
    return tf.debugging.assert_all_finite(waveform, NONFINITE_MESSAGE)


def _protocol_chunks(waveform: tf.Tensor, crop_len: int) -> tf.Tensor:
    """A track's test chunks [n, crop_len] after the length and finiteness checks."""
    length = tf.shape(waveform, out_type=tf.int64)[0]
    check = tf.debugging.assert_greater_equal(length, tf.constant(crop_len, tf.int64), message=(
        f"the waveform is shorter than one chunk of {crop_len} samples "
        f"({crop_len / features.SAMPLE_RATE:.2f} s at {features.SAMPLE_RATE} Hz); pad or loop "
        "short audio, and resample to 22,050 Hz first"))
    with tf.control_dependencies([check]):  # fail with this message before any slicing
        waveform = tf.identity(_finite(waveform))
    chunks = crops.chunk_track(waveform, crop_len)
    # The protocol drops the last chunk even when full; a track of exactly one chunk keeps it.
    return tf.cond(tf.shape(chunks)[0] > 0, lambda: chunks,
                   lambda: tf.reshape(waveform[:crop_len], [1, crop_len]))


def _map_chunks(chunks: tf.Tensor, fn, out_dim: int) -> tf.Tensor:
    """`fn` over [n, crop_len] chunks, `CHUNK_BATCH` per call -> float32 [n, out_dim]."""
    n = tf.shape(chunks)[0]
    parts = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False,
                           element_shape=tf.TensorShape([None, out_dim]))

    def body(i, parts):
        out = tf.cast(fn(chunks[i:i + CHUNK_BATCH]), tf.float32)
        return i + CHUNK_BATCH, parts.write(i // CHUNK_BATCH, out)

    _, parts = tf.while_loop(lambda i, _: i < n, body, [tf.constant(0), parts])
    return tf.reshape(parts.concat(), [n, out_dim])


def _chunk_offsets(chunks: tf.Tensor, crop_len: int) -> tf.Tensor:
    return tf.range(tf.shape(chunks, out_type=tf.int64)[0], dtype=tf.int64) * crop_len


def build_archive(encoder: keras.Model, head: keras.Model | None = None,
                  tag_names: list[str] | None = None, multi_label: bool = True
                  ) -> keras.export.ExportArchive:
    """The ExportArchive with the `embed`, `embed_track`, `embed_chunks` (and `tag`,
    `tag_chunks`) endpoints; each checks its input for NaN/Inf in the graph.

    Args:
      encoder: maps float32 `(batch, crop_len)` waveforms to `(batch, rep_dim)`.
      head: optional probe head mapping `(batch, rep_dim)` features to logits.
      tag_names: names of the head's outputs (required with a head).
      multi_label: sigmoid (True) or softmax (False) probabilities for `tag`.

    Returns:
      The archive, ready for `write_out`.
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("SavedModel export runs on the TensorFlow backend; set "
                           "KERAS_BACKEND=tensorflow.")
    crop_len = int(encoder.input_shape[-1])
    rep_dim = int(encoder.output_shape[-1])
    archive = keras.export.ExportArchive()
    archive.track(encoder)

    def encode(x):
        return tf.cast(encoder(x, training=False), tf.float32)

    def embed(waveform):
        return {"embedding": encode(_finite(waveform))}

    def embed_chunks(waveform):
        chunks = _protocol_chunks(waveform, crop_len)
        return {"embeddings": _map_chunks(chunks, encode, rep_dim),
                "offsets": _chunk_offsets(chunks, crop_len)}

    def embed_track(waveform):
        chunks = _protocol_chunks(waveform, crop_len)
        per_chunk = _map_chunks(chunks, encode, rep_dim)
        return {"embedding": tf.reduce_mean(per_chunk, axis=0),
                "num_chunks": tf.shape(per_chunk)[0]}

    track_spec = [tf.TensorSpec([None], tf.float32, name="waveform")]
    archive.add_endpoint("embed", embed, input_signature=[
        tf.TensorSpec([None, crop_len], tf.float32, name="waveform")])
    archive.add_endpoint("embed_track", embed_track, input_signature=track_spec)
    archive.add_endpoint("embed_chunks", embed_chunks, input_signature=track_spec)
    if head is not None:
        if not tag_names or len(tag_names) != int(head.output_shape[-1]):
            raise ValueError("tag_names must name every output of the probe head")
        archive.track(head)
        names = tf.constant(list(tag_names), tf.string)
        activation = tf.sigmoid if multi_label else tf.nn.softmax
        num_tags = len(tag_names)

        def probabilities(x):
            return activation(tf.cast(head(encode(x), training=False), tf.float32))

        def tag(waveform):
            per_chunk = _map_chunks(_protocol_chunks(waveform, crop_len), probabilities,
                                    num_tags)
            return {"probabilities": tf.reduce_mean(per_chunk, axis=0),
                    "tag_names": tf.identity(names), "num_chunks": tf.shape(per_chunk)[0]}

        def tag_chunks(waveform):
            chunks = _protocol_chunks(waveform, crop_len)
            return {"probabilities": _map_chunks(chunks, probabilities, num_tags),
                    "offsets": _chunk_offsets(chunks, crop_len),
                    "tag_names": tf.identity(names)}

        archive.add_endpoint("tag", tag, input_signature=track_spec)
        archive.add_endpoint("tag_chunks", tag_chunks, input_signature=track_spec)
    return archive


def export_encoder(encoder: keras.Model, out_dir: str, *, head: keras.Model | None = None,
                   tag_names: list[str] | None = None, multi_label: bool = True,
                   info: dict | None = None, overwrite: bool = False) -> dict:
    """Writes OUT/saved_model, OUT/encoder.keras (+ probe_head.keras) and OUT/export.json.

    Args:
      encoder: the encoder (its input length is the crop length).
      out_dir: output folder (local or gs://).
      head: optional probe head (adds the `tag` signature).
      tag_names: the head's tag names.
      multi_label: sigmoid (True) or softmax (False) for `tag`.
      info: extra entries for export.json (where the weights came from).
      overwrite: replace an existing export in `out_dir`.

    Returns:
      The export.json dict.

    Raises:
      FileExistsError: `out_dir` already holds an export and `overwrite` is False.
    """
    saved_model_dir = os.path.join(out_dir, SAVED_MODEL_DIR)
    if tf.io.gfile.exists(saved_model_dir):
        if not overwrite:
            raise FileExistsError(f"{out_dir!r} already holds an export ({SAVED_MODEL_DIR}/); "
                                  "choose another --out or pass --overwrite.")
        tf.io.gfile.rmtree(saved_model_dir)
    tf.io.gfile.makedirs(out_dir)
    archive = build_archive(encoder, head, tag_names, multi_label)
    if "://" in out_dir:  # object stores cannot rename folders
        archive.write_out(saved_model_dir, verbose=False)
    else:  # write next to the target and rename, so a crash never leaves half a SavedModel
        tmp_dir = f"{saved_model_dir}.tmp-{os.getpid()}"
        archive.write_out(tmp_dir, verbose=False)
        os.replace(tmp_dir, saved_model_dir)
    _save_keras(encoder, os.path.join(out_dir, ENCODER_FILE))
    if head is not None:
        _save_keras(head, os.path.join(out_dir, HEAD_FILE))
    signatures = SIGNATURES + (TAG_SIGNATURES if head is not None else [])
    meta = {"sample_rate": features.SAMPLE_RATE, "crop_len": int(encoder.input_shape[-1]),
            "rep_dim": int(encoder.output_shape[-1]), "signatures": signatures,
            "tag_names": list(tag_names or []), "multi_label": bool(multi_label),
            "mssl_tf_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(), **(info or {})}
    fileio.write_json(os.path.join(out_dir, INFO_FILE), meta)
    return meta


def _save_keras(model: keras.Model, path: str) -> None:
    with fileio.atomic_output(path) as local:
        model.save(local)


def _same_checkpoint(probe_ckpt: dict, path: str, epoch: int | None) -> bool:
    if not probe_ckpt.get("path"):
        return False
    if os.path.basename(probe_ckpt["path"]) != os.path.basename(path):
        return False
    return probe_ckpt.get("epoch") is None or epoch is None or int(probe_ckpt["epoch"]) == epoch


def _inside(path: str, folder: str) -> bool:
    path, folder = (os.path.normpath(fileio.absolute(p)) for p in (path, folder))
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _same_run(recorded: str | None, model_dir: str, probe_dir: str) -> bool:
    """True when the probe's recorded run is `model_dir` (a probe folder inside the run counts
    as the run's own even when the run was moved after probing)."""
    if _inside(probe_dir, model_dir):
        return True
    return bool(recorded) and _inside(recorded, model_dir) and _inside(model_dir, recorded)


def check_probe_matches(probe_dir: str, results: dict, model_dir: str, ckpt: dict) -> None:
    """Refuses a probe head that was not trained on features of exactly this encoder.

    The probe's results.json records its run (`model_dir`), its checkpoint (path, epoch and,
    from this version on, the weights' sha256) and whether the encoder was random. A recorded
    hash must equal the exported snapshot's; without one, the run and the checkpoint (file name
    and epoch) must match.

    Args:
      probe_dir: the probe folder (for messages and the inside-the-run rule).
      results: its results.json.
      model_dir: the run being exported.
      ckpt: `rundir.load_encoder`'s info of the exported snapshot ("path", "epoch").

    Raises:
      ValueError: naming the probe's run and checkpoint, the exported ones, and the fix.
    """
    probe_ckpt = results.get("checkpoint") or {}
    probe_run = results.get("model_dir")
    fix = ("its tag probabilities would be meaningless. Pass the probe's --checkpoint (and "
           "--model_dir), or probe this checkpoint first with `mssl-probe --model_dir "
           f"{model_dir} --checkpoint {ckpt['epoch'] if ckpt['epoch'] is not None else 'PATH'}`.")
    exported = f"{ckpt['path']!r} (epoch {ckpt['epoch']}) of the run {model_dir!r}"
    if results.get("random_init"):
        raise ValueError(f"The probe in {probe_dir!r} was trained on features of a random-init "
                         f"encoder, but the export uses {exported}; {fix}")
    made_on = (f"{probe_ckpt.get('path')!r} (epoch {probe_ckpt.get('epoch')}) of the run "
               f"{probe_run!r}")
    recorded_hash = probe_ckpt.get("sha256")
    if recorded_hash:
        if recorded_hash == fileio.sha256_file(ckpt["path"]):
            return
        raise ValueError(f"The probe in {probe_dir!r} was trained on features of {made_on}, "
                         f"whose weights differ from the exported {exported}; {fix}")
    if not _same_run(probe_run, model_dir, probe_dir):
        raise ValueError(f"The probe in {probe_dir!r} was trained on features of {made_on}, "
                         f"another run than the exported {exported}; {fix}")
    if not _same_checkpoint(probe_ckpt, ckpt["path"], ckpt["epoch"]):
        raise ValueError(f"The probe in {probe_dir!r} was trained on features of {made_on}, but "
                         f"the export uses {exported}; {fix}")


def export_run(model_dir: str, out_dir: str, *, checkpoint: str | int = "latest",
               probe_dir: str | None = None, overwrite: bool = False) -> dict:
    """Exports a pre-training run's encoder snapshot (and a probe head trained on it).

    Args:
      model_dir: the `mssl-pretrain` run directory.
      out_dir: output folder (see the module docstring for its layout).
      checkpoint: "latest", an epoch number, or a path to an encoder .weights.h5.
      probe_dir: optional `mssl-probe` output folder; adds the `tag` signature.
      overwrite: replace an existing export in `out_dir`.

    Returns:
      The export.json dict.

    Raises:
      FileNotFoundError: no run, snapshot or probe files.
      ValueError: the probe was trained on another encoder (width, run or checkpoint).
    """
    encoder, ckpt = rundir.load_encoder(model_dir, checkpoint)
    rep_dim = int(encoder.output_shape[-1])
    head, tag_names, multi_label, probe_info = None, None, True, None
    if probe_dir is not None:
        head, results = load_probe(probe_dir, rep_dim)
        check_probe_matches(probe_dir, results, model_dir, ckpt)
        tag_names = [str(t) for t in results["tag_names"]]
        multi_label = bool(results.get("multi_label", True))
        probe_info = {"dir": probe_dir, "head": results.get("head"),
                      "dataset": results.get("dataset"), "metrics": results.get("metrics")}
    info = {"source": {"model_dir": model_dir, "checkpoint": ckpt["path"],
                       "epoch": ckpt["epoch"], "objective": ckpt["run"].get("objective")},
            "probe": probe_info}
    meta = export_encoder(encoder, out_dir, head=head, tag_names=tag_names,
                          multi_label=multi_label, info=info, overwrite=overwrite)
    logger.info("Exported %s (%s) to %s with signatures %s", model_dir, ckpt["path"], out_dir,
                ", ".join(meta["signatures"]))
    return meta


class ExportedModel:
    """A reloaded export with input checks that say what is wrong and how to fix it.

    Plain `tf.saved_model.load(OUT/saved_model)` works as well; this wrapper adds numpy in/out,
    audio files in (`embed_file`, `embed_files`) and clear errors for the usual mistakes
    (float64 arrays, wrong clip length, stereo input, NaN/Inf samples).
    """

    def __init__(self, export_dir: str):
        info_path = os.path.join(export_dir, INFO_FILE)
        if not tf.io.gfile.exists(info_path):
            raise FileNotFoundError(f"{export_dir!r} is not an `mssl-export` folder (no "
                                    f"{INFO_FILE}).")
        self.export_dir = export_dir
        self.info = fileio.read_json(info_path)
        self.crop_len = int(self.info["crop_len"])
        self.sample_rate = int(self.info["sample_rate"])
        self.tag_names = list(self.info.get("tag_names") or [])
        self.module = tf.saved_model.load(os.path.join(export_dir, SAVED_MODEL_DIR))

    def _check(self, name: str, x, ndim: int) -> tf.Tensor:
        x = np.asarray(x) if not isinstance(x, tf.Tensor) else x
        if x.dtype != np.float32 and x.dtype != tf.float32:
            raise TypeError(f"{name} expects float32 waveforms in [-1, 1], got {x.dtype}; convert "
                            "with x.astype(np.float32) (int16 PCM: x / 32768).")
        if len(x.shape) != ndim:
            want = f"[batch, {self.crop_len}]" if ndim == 2 else "[samples] (mono)"
            raise ValueError(f"{name} expects a {ndim}-D waveform shaped {want}, got shape "
                             f"{tuple(x.shape)}; mix stereo to mono and resample to "
                             f"{self.sample_rate} Hz first.")
        if ndim == 2 and x.shape[1] != self.crop_len:
            raise ValueError(f"embed expects clips of exactly {self.crop_len} samples, got "
                             f"{x.shape[1]}; cut clips of that length, or call embed_track "
                             "with the whole track.")
        if ndim == 1 and x.shape[0] < self.crop_len:
            seconds = self.crop_len / self.sample_rate
            raise ValueError(f"{name} needs at least {self.crop_len} samples ({seconds:.2f} s), "
                             f"got {x.shape[0]}.")
        bad = int(np.count_nonzero(~np.isfinite(np.asarray(x))))
        if bad:
            raise ValueError(f"{name}: {bad} NaN or Inf sample(s) in the waveform, which would "
                             "make the output meaningless; replace them (e.g. numpy.nan_to_num) "
                             "or check the decoder that produced the audio.")
        return tf.convert_to_tensor(x)

    def _need_tags(self) -> None:
        if not hasattr(self.module, "tag"):
            raise ValueError("This export has no `tag` signature; export with --probe PROBE_DIR.")

    def embed(self, clips) -> np.ndarray:
        """(batch, crop_len) float32 clips -> (batch, rep_dim) embeddings."""
        return self.module.embed(self._check("embed", clips, 2))["embedding"].numpy()

    def embed_track(self, waveform) -> np.ndarray:
        """A mono track -> its mean chunk embedding, (rep_dim,)."""
        return self.module.embed_track(self._check("embed_track", waveform, 1))["embedding"].numpy()

    def embed_chunks(self, waveform) -> tuple[np.ndarray, np.ndarray]:
        """A mono track -> (per-chunk embeddings (chunks, rep_dim), chunk offsets in samples)."""
        out = self.module.embed_chunks(self._check("embed_chunks", waveform, 1))
        return out["embeddings"].numpy(), out["offsets"].numpy()

    def tag(self, waveform) -> dict[str, float]:
        """A mono track -> {tag name: probability} (needs an export made with --probe)."""
        self._need_tags()
        out = self.module.tag(self._check("tag", waveform, 1))
        return dict(zip(self.tag_names, out["probabilities"].numpy().tolist()))

    def tag_chunks(self, waveform) -> tuple[np.ndarray, np.ndarray]:
        """A mono track -> (per-chunk probabilities (chunks, tags), chunk offsets in samples)."""
        self._need_tags()
        out = self.module.tag_chunks(self._check("tag_chunks", waveform, 1))
        return out["probabilities"].numpy(), out["offsets"].numpy()

    def embed_file(self, path: str, *, chunks: bool = False) -> dict:
        """Embeds an audio file as `mssl-embed` does (same decoder, soxr to the model's rate).

        Args:
          path: any file the data tools read (WAV, MP3, FLAC, OGG, AU), local or gs://.
          chunks: also return the per-chunk outputs.

        Returns:
          {"path", "duration" (s), "n_chunks", "embedding" (rep_dim,)} plus, with a probe,
          "tag_probabilities" (tags,); with `chunks`, "chunk_embeddings" (n, rep_dim),
          "chunk_starts" (n,) seconds and, with a probe, "chunk_tag_probabilities" (n, tags).

        Raises:
          ValueError: the file is not decodable audio or is shorter than one chunk (the
            message names the file and the reason).
        """
        from mssl_tf.embed import audio  # noqa: PLC0415  (TF-free; data_tools on demand)

        try:
            wave = audio.load_waveform(path, self.sample_rate)
        except audio.AudioInputError as e:
            raise ValueError(f"{path}: {e}") from None
        if len(wave) < self.crop_len:
            raise ValueError(f"{path}: too short ({len(wave) / self.sample_rate:.2f} s); it "
                             f"needs at least one chunk of {self.crop_len} samples "
                             f"({self.crop_len / self.sample_rate:.2f} s).")
        emb, offsets = self.embed_chunks(wave)
        out = {"path": path, "duration": len(wave) / self.sample_rate,
               "n_chunks": len(offsets), "embedding": emb.mean(axis=0)}
        if self.tag_names:
            probs, _ = self.tag_chunks(wave)
            out["tag_probabilities"] = probs.mean(axis=0)
            if chunks:
                out["chunk_tag_probabilities"] = probs
        if chunks:
            out["chunk_embeddings"] = emb
            out["chunk_starts"] = offsets / self.sample_rate
        return out

    def embed_files(self, paths, *, chunks: bool = False, on_error: str = "raise") -> list[dict]:
        """`embed_file` over many files (one at a time; `mssl-embed` batches and is faster).

        Args:
          paths: audio files.
          chunks: also return the per-chunk outputs.
          on_error: "raise" (default) stops at the first bad file; "skip" returns
            {"path", "error"} for it and goes on.

        Returns:
          One dict per path, in order.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        results = []
        for path in paths:
            try:
                results.append(self.embed_file(path, chunks=chunks))
            except ValueError as e:
                if on_error == "raise":
                    raise
                results.append({"path": path, "error": str(e)})
        return results


def describe(export_dir: str) -> str:
    """A short human-readable summary of an export folder."""
    info = fileio.read_json(os.path.join(export_dir, INFO_FILE))
    lines = [f"{export_dir}: signatures {', '.join(info['signatures'])}; clips of "
             f"{info['crop_len']} samples at {info['sample_rate']} Hz -> {info['rep_dim']}-d"]
    if info.get("tag_names"):
        lines.append(f"  tags ({len(info['tag_names'])}): {', '.join(info['tag_names'][:12])}"
                     + (" ..." if len(info["tag_names"]) > 12 else ""))
    return "\n".join(lines)


__all__ = ["ExportedModel", "build_archive", "check_probe_matches", "describe",
           "export_encoder", "export_run", "load_probe"]
