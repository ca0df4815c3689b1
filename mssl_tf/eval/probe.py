"""`run_probe`: the gin entry point of `mssl-probe` (frozen encoder -> features -> head -> metrics).

Everything about the encoder comes from the pre-training run directory (run.json and its
snapshots, written by `mssl-pretrain`), so no architecture flag is repeated. Features of the
frozen encoder are cached under RUN/probes/<dataset>-<checkpoint>/ and re-used by later probes
(linear and MLP heads share them); results go to RUN/probes/<dataset>-<checkpoint>/<head>/.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import logging
import os
import re
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from mssl_tf import fileio, rundir
from mssl_tf.data import pipeline
from mssl_tf.eval import embed, metrics, train_head
from mssl_tf.version import __version__

logger = logging.getLogger(__name__)

PROBES_DIR = "probes"
RESULTS_NAME = "results.json"
# Passes over the train split (each with new crop positions) at most while estimating a
# random-init encoder's BatchNorm statistics: a tiny split gives fewer crops, not a long wait.
MAX_BN_PASSES = 10


def _probe_labels(manifest: dict, data_dir: str) -> tuple[int, list[str], bool]:
    """(num_labels, tag names, multi_label) of a labelled dataset; refuses unlabelled shards."""
    num_labels = int(manifest.get("num_labels") or 0)
    if num_labels < 1:
        raise ValueError(
            f"The shards in {data_dir!r} (dataset {manifest.get('dataset')!r}) carry no labels, "
            "so there is nothing to probe. Probe on a labelled dataset (e.g. `mssl-prepare mtat` "
            "or `mssl-prepare gtzan`, or your own folder converted with `mssl-prepare folder "
            "--labels labels.csv`); unlabelled folders are for pre-training only.")
    names = list(manifest.get("tag_names") or [f"tag{i}" for i in range(num_labels)])
    if len(names) != num_labels:
        raise ValueError(f"{data_dir}/manifest.json lists {len(names)} tag names for "
                         f"num_labels={num_labels}; re-run `mssl-prepare`.")
    return num_labels, names, bool(manifest.get("multi_label", True))


def _check_label_width(split: str, labels: np.ndarray, num_labels: int, data_dir: str) -> None:
    if labels.ndim != 2 or labels.shape[1] != num_labels:
        width = labels.shape[1] if labels.ndim == 2 else 0
        raise ValueError(
            f"The {split!r} split in {data_dir!r} has {width} labels per track but the manifest "
            f"(and the other splits) have {num_labels}; all splits must share one label set. "
            "Re-run `mssl-prepare` so every split is written with the same tag list.")


def pretrain_summary(model_dir: str, run: dict) -> dict:
    """What the report needs to place a run in the thesis' tables."""
    data_dir = run.get("data_dir", "")
    try:
        dataset = fileio.read_manifest(data_dir)["dataset"] if data_dir else None
    except (FileNotFoundError, ValueError, tf.errors.OpError):
        dataset = None
    dataset = dataset or run.get("dataset") or os.path.basename(os.path.normpath(data_dir)) or "?"
    projector = None
    op_path = os.path.join(model_dir, "operative_config.gin")
    if tf.io.gfile.exists(op_path):
        with tf.io.gfile.GFile(op_path, "r") as f:
            m = re.search(r"^pretrain\.projector\s*=\s*['\"](\w+)['\"]", f.read(), re.M)
        projector = m.group(1) if m else None
    encoder = run.get("encoder", {})
    return {"objective": run.get("objective"), "dataset": dataset,
            "rep_dim": encoder.get("rep_dim"), "global_batch": run.get("global_batch"),
            "epochs": run.get("epochs"), "latest_epoch": run.get("latest_epoch"),
            "projector": projector or run.get("projector") or "vicreg"}


def _batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    layers, stack = [], list(model.layers)
    while stack:  # nested models too
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layers.append(layer)
        stack.extend(getattr(layer, "layers", []))
    return layers


def estimate_bn_statistics(encoder: keras.Model, data_dir: str, *, num_crops: int = 1024,
                           batch_size: int = 64, seed: int = 0) -> int:
    """Sets every BatchNorm's moving mean/variance to their averages over training crops.

    A randomly initialised encoder's BatchNorm has moving mean 0 and variance 1, so in inference
    mode it passes unnormalised activations through and its features shrink layer by layer
    (on real music mean |x| ~ 2.5e-4, a third of the dimensions constant): the probe's floor
    then measures feature scale, not the architecture. This runs the encoder in training mode
    over `num_crops` random training crops (one per track, up to MAX_BN_PASSES passes with new
    crop seeds if the split is smaller) with a cumulative-average momentum, (k - 1) / k for
    batch k, so the moving statistics end as the mean of the batch statistics ("precise BN");
    weights are not touched. The encoder is left as it was otherwise (momentum restored).

    Args:
      encoder: the encoder (trainable, so that BatchNorm runs in training mode).
      data_dir: labelled or unlabelled shards with a "train" split.
      num_crops: crops to average over.
      batch_size: crops per encoder call.
      seed: seed of the crop positions of the first pass.

    Returns:
      The number of crops used.
    """
    layers = _batch_norm_layers(encoder)
    if not layers or num_crops < 1:
        return 0
    crop_len = int(encoder.input_shape[-1])
    momentum = [layer.momentum for layer in layers]
    encoder.trainable = True
    used, batches = 0, 0
    try:
        for attempt in range(MAX_BN_PASSES):  # until enough crops, or a pass adds none
            ds = pipeline.single_crop_dataset(data_dir, "train", batch_size, crop_len=crop_len,
                                              seed=seed + attempt)
            seen = used
            for batch in ds:
                audio = batch["audio"].numpy()[:num_crops - used]
                batches += 1
                for layer in layers:
                    layer.momentum = (batches - 1) / batches
                encoder(audio, training=True)
                used += len(audio)
                if used >= num_crops:
                    break
            if used >= num_crops or used == seen:
                break
    finally:
        for layer, m in zip(layers, momentum):
            layer.momentum = m
    if not used:
        raise ValueError(f"No track of the 'train' split in {data_dir!r} is at least {crop_len} "
                         "samples long, so the BatchNorm statistics cannot be estimated.")
    logger.info("BatchNorm statistics of the random-init encoder estimated on %d train crops "
                "(%d layers)", used, len(layers))
    return used


def _load_encoder(model_dir: str, checkpoint: str | int, random_init: bool, seed: int
                  ) -> tuple[keras.Model, dict]:
    """The run's encoder (snapshot or random init), a cache tag and a weights fingerprint."""
    if random_init:
        keras.utils.set_random_seed(seed)
        encoder = rundir.build_encoder_from_run(model_dir)
        return encoder, {"epoch": 0, "path": None, "tag": "random_init",
                         "fingerprint": f"random_init-seed{seed}"}
    encoder, info = rundir.load_encoder(model_dir, checkpoint)
    epoch = info.get("epoch")
    if epoch is not None:
        tag = f"epoch{int(epoch):05d}"
    else:
        tag = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(info["path"]).split(".")[0])
    return encoder, {"epoch": epoch, "path": info["path"], "tag": tag,
                     "fingerprint": embed.file_fingerprint(info["path"])}


def probe_encoder(encoder: keras.Model, data_dir: str, *, work_dir: str,
                  out_dir: str | None = None, head: str = "linear", weights_key: str = "",
                  feature_batch_size: int = 64, crop_seed: int = 0,
                  fit_kwargs: dict | None = None, extra_results: dict | None = None) -> dict:
    """Probes any frozen encoder mapping `(batch, crop_len)` waveforms to `(batch, D)` features.

    Args:
      encoder: the encoder; its input length is the crop length.
      data_dir: labelled shards (train/valid/test) from `mssl-prepare`.
      work_dir: folder of the feature cache (features_{train,valid,test}.npz).
      out_dir: where results.json, history.json and the head go (default work_dir/<head>).
      head: "linear" or "mlp".
      weights_key: identifies the encoder's weights (e.g. a file hash); cached features made
        with another key are recomputed.
      feature_batch_size: crops per encoder call.
      crop_seed: seed of the one random crop per train/valid track.
      fit_kwargs: head-training settings passed to `train_head.fit_head`.
      extra_results: more entries for results.json.

    Returns:
      The results dict, also written to out_dir/results.json.
    """
    if head not in ("linear", "mlp"):
        raise ValueError(f"probe head must be 'linear' or 'mlp', got {head!r}")
    start = time.time()
    fit_kwargs = dict(fit_kwargs or {})
    manifest = fileio.read_manifest(data_dir)
    num_labels, tag_names, multi_label = _probe_labels(manifest, data_dir)
    crop_len = int(encoder.input_shape[-1])
    out_dir = out_dir or os.path.join(work_dir, head)
    bn_before = embed.bn_moving_statistics(embed.freeze(encoder))

    counts = {s: int(v.get("num_tracks", 0)) for s, v in manifest.get("splits", {}).items()}
    data_key = {"data_dir": os.path.abspath(data_dir) if "://" not in data_dir else data_dir,
                "dataset": manifest["dataset"], "created": manifest.get("created"),
                "splits": counts}
    key = {"weights": weights_key, "crop_len": crop_len, "data": data_key}
    feats = {}
    for split in ("train", "valid"):
        feats[split] = embed.cached(
            os.path.join(work_dir, f"features_{split}.npz"), {**key, "crop_seed": crop_seed},
            lambda s=split: embed.embed_crops(encoder, data_dir, s, crop_len=crop_len,
                                              batch_size=feature_batch_size, seed=crop_seed,
                                              total=counts.get(s)))
    feats["test"] = embed.cached(
        os.path.join(work_dir, "features_test.npz"), key,
        lambda: embed.embed_chunks(encoder, data_dir, "test", crop_len=crop_len,
                                   batch_size=feature_batch_size, total=counts.get("test")))
    for split, f in feats.items():
        _check_label_width(split, f["labels"], num_labels, data_dir)
    embed.check_bn_unchanged(encoder, bn_before)
    # single_crop_dataset drops tracks shorter than one crop; count them so nothing is silent.
    short = {s: max(counts.get(s, 0) - len(feats[s]["track_ids"]), 0) for s in ("train", "valid")}
    for split, n in short.items():
        if n:
            logger.warning("%d %s track(s) in %s are shorter than %d samples and were left out",
                           n, split, data_dir, crop_len)

    head_model, fit_info = train_head.fit_head(
        (feats["train"]["features"], feats["train"]["labels"]),
        (feats["valid"]["features"], feats["valid"]["labels"]),
        kind=head, multi_label=multi_label, **fit_kwargs)
    test = feats["test"]
    y_score = train_head.predict_tracks(head_model, test["features"], test["owner"],
                                        len(test["track_ids"]), multi_label=multi_label)
    scores = metrics.probe_metrics(test["labels"], y_score, multi_label=multi_label,
                                   tag_names=tag_names)
    # "standardize" enters the settings (and the config hash) only when on, so CLMR-protocol
    # probes keep the hash they always had.
    settings = {"head": head, "feature_batch_size": feature_batch_size, "crop_seed": crop_seed,
                **{k: v for k, v in fit_kwargs.items()
                   if k != "verbose" and (k != "standardize" or v)}}
    config_hash = hashlib.sha256(json.dumps({"settings": settings, "features": key},
                                            sort_keys=True).encode()).hexdigest()[:16]
    results = {
        "metrics": scores, "head": head, "multi_label": multi_label,
        "dataset": manifest["dataset"], "data_dir": data_dir, "tag_names": tag_names,
        "split_counts": {"train": len(feats["train"]["track_ids"]),
                         "valid": len(feats["valid"]["track_ids"]),
                         "test": len(test["track_ids"]),
                         "test_chunks": int(len(test["features"])),
                         "test_skipped": int(len(test["skipped"])),
                         "train_skipped": short["train"], "valid_skipped": short["valid"]},
        "skipped_test_tracks": [str(t) for t in test["skipped"]],
        "features_cached": {s: bool(f["cache_hit"]) for s, f in feats.items()},
        "training": {k: fit_info[k] for k in ("epochs", "lr_reductions", "stopped_early",
                                               "best_val_loss", "constant_dims")
                     if k in fit_info},
        "standardize": bool(fit_kwargs.get("standardize", False)),
        "settings": settings, "config_hash": config_hash,
        "mssl_tf_version": __version__, "seconds": round(time.time() - start, 2),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        **(extra_results or {}),
    }
    # The head and its side files first, results.json last: a folder with a results.json
    # always holds the head it describes.
    buf = io.BytesIO()  # track-level predictions, for re-scoring without re-running
    np.savez(buf, track_ids=test["track_ids"], labels=test["labels"], scores=y_score)
    fileio.write_bytes(os.path.join(out_dir, "test_predictions.npz"), buf.getvalue())
    rundir.save_weights(head_model, os.path.join(out_dir, "head.weights.h5"))
    fileio.write_text(os.path.join(out_dir, rundir.OPERATIVE_GIN), gin.operative_config_str())
    fileio.write_json(os.path.join(out_dir, "history.json"), fit_info["history"])
    fileio.write_json(os.path.join(out_dir, RESULTS_NAME), results)
    logger.info("Probe %s on %s: ROC-AUC %.2f, PR-AUC %.2f -> %s", head, manifest["dataset"],
                scores["roc_auc"], scores["pr_auc"], out_dir)
    return results


@gin.configurable(denylist=["model_dir", "data_dir"])
def run_probe(model_dir: str, data_dir: str, *, head: str = "linear",
              checkpoint: str | int = "latest", random_init: bool = False,
              out_dir: str | None = None, cache_dir: str | None = None,
              hidden: int | None = None, learning_rate: float = 1e-3,
              weight_decay: float = 1e-6, batch_size: int = 48, max_epochs: int = 200,
              plateau_factor: float = 0.1, plateau_patience: int = 5,
              plateau_threshold: float = 1e-4, early_stop_patience: int = 10,
              feature_batch_size: int = 64, crop_seed: int = 0, seed: int = 0,
              standardize: bool = False, bn_crops: int = 1024,
              verbose: int | str = 0) -> dict:
    """Probes a pre-training run's encoder (a snapshot, or random init) on a labelled dataset.

    Args:
      model_dir: pre-training run directory (run.json + snapshots/).
      data_dir: labelled shards (train/valid/test) from `mssl-prepare`, e.g. MTAT.
      head: "linear" or "mlp".
      checkpoint: "latest", an epoch number, or a path to an encoder .weights.h5.
      random_init: probe the run's architecture with random weights (every table's floor).
      out_dir: where results.json and the head go (default RUN/probes/<dataset>-<ckpt>/<head>).
      cache_dir: where features are cached (default RUN/probes/<dataset>-<ckpt>).
      hidden: MLP hidden width (default: the representation width, as CLMR).
      learning_rate / weight_decay / batch_size / max_epochs: head training (CLMR: 1e-3,
        coupled L2 1e-6, 48, 200).
      plateau_factor / plateau_patience / plateau_threshold: ReduceLROnPlateau (0.1, 5, 1e-4 rel).
      early_stop_patience: early stopping on the validation loss (10).
      feature_batch_size: crops per encoder call while embedding.
      crop_seed: seed of the one random crop per train/valid track.
      seed: seed of the head (and of the random-init encoder).
      standardize: z-score the features with the train split's mean and std (every split),
        folded into the saved head; off = CLMR's protocol. Recorded in results.json.
      bn_crops: with random_init, estimate the encoder's BatchNorm statistics on this many
        train crops before freezing it (`estimate_bn_statistics`); 0 keeps the initial moving
        mean 0 / variance 1. results.json says which ("bn_stats").
      verbose: Keras progress output of head training.

    Returns:
      The results dict, also written to out_dir/results.json.

    Raises:
      FileNotFoundError: no run.json, no snapshot, or no shards.
      ValueError: unlabelled shards, label sets differing between splits, a snapshot that does
        not fit the run's encoder.
    """
    if head not in ("linear", "mlp"):
        raise ValueError(f"run_probe.head must be 'linear' or 'mlp', got {head!r}")
    run = rundir.read_run(model_dir)
    manifest = fileio.read_manifest(data_dir)
    _probe_labels(manifest, data_dir)  # refuse unlabelled shards before loading anything
    encoder, ckpt = _load_encoder(model_dir, checkpoint, random_init, seed)
    if not random_init:
        bn_stats = "from the checkpoint"
    elif bn_crops > 0:
        used = estimate_bn_statistics(encoder, data_dir, num_crops=bn_crops,
                                      batch_size=feature_batch_size, seed=crop_seed + 1)
        bn_stats = f"estimated on {used} crops"
        ckpt["fingerprint"] += f"-bn{used}"  # cached features of another estimate are stale
    else:
        bn_stats = "initial (moving mean 0, variance 1)"
    work_dir = cache_dir or os.path.join(model_dir, PROBES_DIR,
                                         f"{manifest['dataset']}-{ckpt['tag']}")
    fit_kwargs = {"hidden": hidden, "learning_rate": learning_rate,
                  "weight_decay": weight_decay, "batch_size": batch_size,
                  "max_epochs": max_epochs, "plateau_factor": plateau_factor,
                  "plateau_patience": plateau_patience, "plateau_threshold": plateau_threshold,
                  "early_stop_patience": early_stop_patience, "seed": seed,
                  "standardize": standardize, "verbose": verbose}
    extra = {"random_init": random_init, "bn_stats": bn_stats, "model_dir": model_dir,
             # sha256 of the snapshot: lets mssl-export refuse a head of other weights.
             "checkpoint": {"epoch": ckpt["epoch"], "path": ckpt["path"], "tag": ckpt["tag"],
                            "sha256": None if random_init else ckpt["fingerprint"]},
             "pretrain": pretrain_summary(model_dir, run)}
    return probe_encoder(encoder, data_dir, work_dir=work_dir, out_dir=out_dir, head=head,
                         weights_key=ckpt["fingerprint"], feature_batch_size=feature_batch_size,
                         crop_seed=crop_seed, fit_kwargs=fit_kwargs, extra_results=extra)
