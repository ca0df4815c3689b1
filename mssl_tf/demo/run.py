"""The quickstart demo: corpus -> mssl-prepare -> VICReg and CLMR pre-training -> probes -> export.

Everything runs on the demo corpus (`mssl_tf.demo.corpus`) with the reduced encoder of
gin/experiments/demo_{vicreg,clmr}.gin, so it finishes in minutes on a laptop CPU. The output
folder holds everything: the audio, the shards, both runs (with their probes), the exported
SavedModel, results.md / results.json and the figures.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import time

import numpy as np

from mssl_tf import fileio
from mssl_tf.demo import corpus, summary

# What `--quick` changes (tests, CI): fewer and shorter clips, one epoch, a short probe. The full
# demo trains each objective for its preset's own `pretrain.epochs` (epochs None).
FULL = {"counts": corpus.DEFAULT_COUNTS, "seconds": 10.0, "epochs": None,
        "probe_epochs": 150}
QUICK = {"counts": {"train": 16, "valid": 8, "test": 8}, "seconds": 4.0, "epochs": 1,
         "probe_epochs": 5}
# Probe head training for the demo: CLMR's protocol (Adam with coupled L2, plateau, early stop)
# with a larger step and batch 16, since 48 training clips give 3 steps per epoch (CLMR: ~390).
PROBE = {"learning_rate": 1e-2, "batch_size": 16}
OUTPUTS = ("audio", "shards", "runs", "export", "figures", "results.md", "results.json")
OBJECTIVES = (("VICReg", "vicreg", "experiments/demo_vicreg.gin"),
              ("CLMR", "clmr", "experiments/demo_clmr.gin"))
FLOOR = "random init"


def run_name(key: str, seed: int) -> str:
    """Folder name under OUT/runs/ of one objective's run: `vicreg` for seed 0, else
    `vicreg_seed<k>`."""
    return key if seed == 0 else f"{key}_seed{seed}"


def probe_variants() -> list[tuple[str, str, dict]]:
    """(key, description, extra `run_probe` arguments) of the probes run on every encoder.

    CLMR's protocol, and the standardised-feature probe (train-split z-score, the same head
    training otherwise), since a random-init encoder's unnormalised features can defeat CLMR's
    probe and so understate the floor.
    """
    return [("clmr", "CLMR-protocol probe", {}),
            ("standardized", "standardised-feature probe", {"standardize": True})]


def floor_text(res: dict) -> str:
    """The "pre-training" cell of the random-init floor, saying how its BatchNorm was set."""
    return f"none (random weights; BatchNorm statistics {res['bn_stats']})"


def _seed_words(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"one seed ({seeds[0]}); `mssl-demo --seeds 3` gives mean +- std over 3 seeds"
    return f"mean +- std over {len(seeds)} seeds ({', '.join(map(str, seeds))})"


def _say(message: str) -> None:
    print(message, flush=True)


def _check_out_dir(out_dir: str, overwrite: bool) -> None:
    present = [name for name in OUTPUTS if os.path.exists(os.path.join(out_dir, name))]
    if present and not overwrite:
        raise FileExistsError(f"{out_dir!r} already holds demo output ({', '.join(present)}); "
                              "pass --overwrite to replace it, or choose another --out.")
    for name in present:  # only what the demo itself writes
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def prepare(audio_dir: str, labels_csv: str, shards_dir: str, progress: bool) -> dict:
    """Lists the corpus as `mssl-prepare folder` does and converts it (library calls)."""
    from data_tools import tfrecord_lib  # noqa: PLC0415
    from data_tools.datasets import folder  # noqa: PLC0415
    # The manifest records the equivalent command line, which reproduces these shards.
    command = shlex.join(["mssl-prepare", "folder", "--audio_dir", audio_dir, "--labels",
                          labels_csv, "--name", "demo", "--out", shards_dir, "--workers", "1"])
    _say(f"$ {command}")
    listing = folder.list_tracks(audio_dir, labels_csv, "demo")
    # One worker decodes in this process: for a few dozen short WAVs that is faster than
    # starting decode processes (each re-imports the audio stack, ~10-20 s).
    manifest = tfrecord_lib.convert(listing, shards_dir, workers=1, progress=progress,
                                    command=command)
    counts = ", ".join(f"{s} {e['num_tracks']}" for s, e in manifest["splits"].items())
    _say(f"wrote {shards_dir}: {counts} tracks; {len(manifest['skipped'])} skipped")
    return manifest


def preset_epochs(gin_file: str) -> int:
    """`pretrain.epochs` of a demo preset (what the full demo trains it for)."""
    import gin  # noqa: PLC0415

    from mssl_tf import gin_utils  # noqa: PLC0415
    gin_utils.parse([gin_file], ["pretrain.data_dir = '/unused'"])
    return int(gin.query_parameter("pretrain.epochs"))


def repeatable_threads() -> bool:
    """Makes TensorFlow run independent ops one at a time (one inter-op thread).

    With TensorFlow's default thread pools a VICReg pre-training on CPU is not bit-for-bit
    repeatable (two runs of the same seed differ from the first steps on, by ~1e-5 of the loss
    after 4 steps and by points of ROC-AUC after 240 steps); with one inter-op thread two runs give
    the same loss and probe scores to the last digit (README "Demo results"). Intra-op
    parallelism (the threads inside a convolution) is kept. The setting must come before
    TensorFlow's first op in the process.

    Returns:
      Whether one inter-op thread is in effect: False when TensorFlow had already started its
      thread pools with another setting in this process (then the runs may not repeat).
    """
    import tensorflow as tf  # noqa: PLC0415
    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return True
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # "cannot be modified after initialization"
        return False
    return True


def _pretrain(run_dir: str, gin_file: str, shards_dir: str, epochs: int | None, verbose,
              seed: int = 0) -> dict:
    """One pre-training run of a preset; `epochs` None keeps the preset's own."""
    from mssl_tf import gin_utils  # noqa: PLC0415
    from mssl_tf.train import experiment  # noqa: PLC0415
    params = [f"pretrain.data_dir = '{shards_dir}'", f"TwoViewInput.seed = {seed}"]
    if epochs is not None:
        params.append(f"pretrain.epochs = {epochs}")
    if epochs == 1:  # a 1-epoch run has no warmup
        params.append("WarmupCosine.warmup_epochs = 0")
    _say(f"$ mssl-pretrain --model_dir {run_dir} --gin_file {gin_file} "
         + " ".join(f'--gin_param "{p}"' for p in params))
    gin_utils.parse([gin_file], params, model_dir=run_dir)
    return experiment.pretrain(run_dir, loop=experiment.TrainLoop(progress=bool(verbose)))


def run_demo(out_dir: str, *, quick: bool = False, epochs: int | None = None,
             overwrite: bool = False, progress: bool = True, export: bool = True,
             seed: int = 0, seeds: int = 1) -> dict:
    """Runs the whole demo and writes its outputs under `out_dir`.

    Args:
      out_dir: output folder (created).
      quick: a reduced run (16 training clips of 4 s, one epoch) for tests.
      epochs: pre-training epochs of each objective (default: each preset's own
        `pretrain.epochs`; quick: 1).
      overwrite: replace earlier demo output in `out_dir`.
      progress: progress bars (Keras, tqdm).
      export: export the VICReg encoder and its probe as a SavedModel.
      seed: seed of the corpus.
      seeds: pre-train and probe with training seeds 0 .. seeds - 1 (model initialisation,
        crops, augmentation, probe head; the corpus stays the same) and report the mean and
        spread of every encoder's score and of its gain over the random-init floor.

    Returns:
      The results.json dict: {"rows": [...], "timings": {...}, "settings": {...}, ...}.
    """
    import keras  # noqa: PLC0415

    from mssl_tf.eval.probe import run_probe  # noqa: PLC0415

    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    seeds = list(range(seeds))
    cfg = dict(QUICK if quick else FULL)
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    os.makedirs(out_dir, exist_ok=True)
    _check_out_dir(out_dir, overwrite)
    logging.getLogger("absl").setLevel(logging.ERROR)
    repeatable = repeatable_threads()  # before TensorFlow's first op
    import tensorflow as tf  # noqa: PLC0415
    tf.get_logger().setLevel(logging.ERROR)  # the probe's per-split tracing notes are noise here
    inter_op_threads = tf.config.threading.get_inter_op_parallelism_threads()  # 0: default
    if not repeatable:
        _say("NOTE: TensorFlow was already running in this process with several inter-op "
             "threads, so VICReg's numbers may differ slightly from another invocation "
             "(`mssl-demo` in a fresh process repeats them to the last digit).")
    verbose = "auto" if progress else 0
    timings = {}
    start = time.time()
    n_stages = 6 if export else 5

    _say(f"[1/{n_stages}] Synthesising the demo corpus ({sum(cfg['counts'].values())} clips of "
         f"{cfg['seconds']:.0f} s; tags: {', '.join(corpus.TAGS)})")
    t = time.time()
    audio_dir = os.path.join(out_dir, "audio")
    made = corpus.write_corpus(audio_dir, counts=cfg["counts"], seconds=cfg["seconds"],
                               seed=seed, progress=progress)
    timings["corpus"] = time.time() - t

    _say(f"[2/{n_stages}] Converting it to TFRecord shards with mssl-prepare (folder layout)")
    t = time.time()
    shards_dir = os.path.join(out_dir, "shards")
    manifest = prepare(audio_dir, made["labels_csv"], shards_dir, progress)
    timings["prepare"] = time.time() - t

    epochs_of = {name: cfg["epochs"] or preset_epochs(gin_file)
                 for name, _, gin_file in OBJECTIVES}
    _say(f"[3/{n_stages}] Pre-training "
         + " and ".join(f"{name} for {n} epoch(s)" for name, n in epochs_of.items())
         + f"{f', seeds {seeds}' if len(seeds) > 1 else ''}. NOTE: a reduced SampleCNN (8 blocks "
         "on 19,683-sample crops, widths 16-64, 64-d output; see gin/experiments/demo_*.gin), "
         "not the thesis' 512-d encoder on 59,049 samples.")
    runs, histories = {}, {}
    for train_seed in seeds:
        for name, key, gin_file in OBJECTIVES:
            t = time.time()
            run_dir = os.path.join(out_dir, "runs", run_name(key, train_seed))
            keras.utils.set_random_seed(train_seed)
            result = _pretrain(run_dir, gin_file, shards_dir, cfg["epochs"], verbose, train_seed)
            runs[run_name(key, train_seed)] = {"run_dir": run_dir, "steps": int(result["step"]),
                                               "epochs": epochs_of[name],
                                               "seconds": time.time() - t, "seed": train_seed}
            if train_seed == seeds[0]:
                histories[name] = result["history"]
            timings[f"pretrain_{run_name(key, train_seed)}"] = time.time() - t

    variants = probe_variants()
    _say(f"[4/{n_stages}] Linear probes on the frozen encoders: the random-init floor, VICReg, "
         f"CLMR ({' and '.join(text for _, text, _ in variants)}; CLMR's test protocol: "
         "chunk-averaged probabilities, macro ROC-AUC / PR-AUC)")
    probe_kwargs = {**PROBE, "max_epochs": cfg["probe_epochs"]}
    rows, per_tag, probe_dirs, per_seed = [], {}, {}, []
    for train_seed in seeds:
        first = train_seed == seeds[0]
        plan = [(FLOOR, "vicreg", True)] + [(name, key, False) for name, key, _ in OBJECTIVES]
        for name, key, random_init in plan:
            t = time.time()
            run = runs[run_name(key, train_seed)]
            work_dir = None  # the first probe's feature cache, shared by the other variants
            for variant, _, kwargs in variants:
                # The CLMR-protocol head goes to the default <cache>/linear; others beside it.
                where = {"out_dir": os.path.join(work_dir, f"linear_{variant}")} if work_dir \
                    else {}
                res = run_probe(run["run_dir"], shards_dir, head="linear",
                                random_init=random_init, checkpoint="latest", seed=train_seed,
                                **where, **probe_kwargs, **kwargs)
                work_dir = work_dir or os.path.join(
                    run["run_dir"], "probes", f"{res['dataset']}-{res['checkpoint']['tag']}")
                probe_dir = where.get("out_dir", os.path.join(work_dir, "linear"))
                per_seed.append({"encoder": name, "seed": train_seed, "probe": variant,
                                 "metrics": res["metrics"], "probe_dir": probe_dir,
                                 "bn_stats": res.get("bn_stats")})
                if first and variant == "clmr":
                    probe_dirs[name] = probe_dir
                    per_tag[name] = summary.per_tag_roc_auc(
                        os.path.join(probe_dir, "test_predictions.npz"), res["tag_names"])
                    text = (floor_text(res) if random_init else
                            f"{run['epochs']} epoch(s), {run['steps']} steps, "
                            f"{run['seconds']:.0f} s")
                    rows.append({"encoder": name, "pretraining": text,
                                 "metrics": res["metrics"], "probe_dir": probe_dir,
                                 "probe_epochs": res["training"]["epochs"]})
            slug = name.lower().replace(" ", "_")  # "random init" -> a JSON key without spaces
            timings[f"probe_{slug}_seed{train_seed}"] = time.time() - t
    gains = summary.seed_summary(per_seed, floor=FLOOR)

    export_info = None
    if export:
        _say(f"[5/{n_stages}] Exporting the VICReg encoder and its probe as a SavedModel")
        t = time.time()
        from mssl_tf.export import ExportedModel, export_run  # noqa: PLC0415
        export_dir = os.path.join(out_dir, "export")
        export_run(runs[run_name("vicreg", seeds[0])]["run_dir"], export_dir,
                   probe_dir=probe_dirs["VICReg"])
        model = ExportedModel(export_dir)
        test_clip = next(c for c in made["clips"] if c[2] == "test")
        import soundfile as sf  # noqa: PLC0415
        audio, _ = sf.read(os.path.join(audio_dir, test_clip[0]), dtype="float32")
        probs = model.tag(audio)
        top = sorted(probs, key=probs.get, reverse=True)[:len(test_clip[1])]
        export_info = {"dir": export_dir, "example_clip": test_clip[0],
                       "example_true_tags": test_clip[1], "example_top_tags": top,
                       "example_probabilities": probs}
        timings["export"] = time.time() - t

    _say(f"[{n_stages}/{n_stages}] Writing the comparison table and figures")
    table = summary.comparison_table(rows)
    gains_table = summary.gains_table(gains, [text for _, text, _ in variants])
    figures = summary.write_figures(os.path.join(out_dir, "figures"), rows, histories, per_tag)
    timings["total"] = time.time() - start
    results = {"rows": rows, "per_tag_roc_auc": per_tag, "timings": timings,
               "seeds": seeds, "per_seed": per_seed, "gains": gains,
               "settings": {"quick": quick, **cfg, "probe": probe_kwargs, "seeds": seeds,
                            "inter_op_threads": inter_op_threads,
                            "probe_variants": [v for v, _, _ in variants],
                            "gin_files": [g for _, _, g in OBJECTIVES]},
               "dataset": {"tag_names": manifest.get("tag_names"),
                           "splits": {s: v["num_tracks"] for s, v in manifest["splits"].items()}},
               "runs": runs, "export": export_info, "figures": figures}
    fileio.write_json(os.path.join(out_dir, "results.json"), results, sort_keys=False,
                      default=_json_default)
    text = _results_markdown(table, gains_table, results)
    fileio.write_text(os.path.join(out_dir, "results.md"), text)
    _say("\n" + text)
    return results


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def _results_markdown(table: str, gains_table: str, results: dict) -> str:
    splits = results["dataset"]["splits"]
    lines = ["# mssl-demo results", "",
             f"Demo corpus: {splits.get('train', 0)} train / {splits.get('valid', 0)} valid / "
             f"{splits.get('test', 0)} test clips, tags: "
             f"{', '.join(results['dataset']['tag_names'] or [])}.",
             "Encoder: a REDUCED SampleCNN (gin/experiments/demo_*.gin), so these are demo "
             "numbers on synthetic music; they are not comparable with the thesis' tables.", "",
             f"Seed {results['seeds'][0]}, CLMR's probe protocol:", "", table, "",
             f"Gain over the random-init floor ({_seed_words(results['seeds'])}; the floor is "
             "the same encoder with random weights, probed the same way, seed for seed):", "",
             gains_table, ""]
    if results["export"]:
        e = results["export"]
        lines += [f"Exported SavedModel: {e['dir']} (signatures embed, embed_track, embed_chunks, "
                  f"tag, tag_chunks). "
                  f"Example {e['example_clip']}: true tags {', '.join(e['example_true_tags'])}; "
                  f"top predicted {', '.join(e['example_top_tags'])}.", ""]
    lines += ["Figures: " + ", ".join(os.path.basename(p) for p in results["figures"])
              + " (in figures/).", "",
              "Time per stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                  results["timings"].items()), ""]
    return "\n".join(lines)
