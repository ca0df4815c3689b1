"""The quickstart demo: corpus -> mssl-prepare -> VICReg and CLMR pre-training -> probes -> export.

Everything runs on the demo corpus (`mssl_tf.demo.corpus`) with the reduced encoder of
gin/experiments/demo_{vicreg,clmr}.gin, so it finishes in minutes on a laptop CPU. The output
folder holds everything: the audio, the shards, both runs (with their probes), the exported
SavedModel, results.md / results.json and the figures.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

import numpy as np

from mssl_tf import fileio
from mssl_tf.demo import corpus, summary

# What `--quick` changes (tests, CI): fewer and shorter clips, one epoch, a short probe.
FULL = {"counts": {"train": 48, "valid": 16, "test": 16}, "seconds": 10.0, "epochs": 12,
        "probe_epochs": 150}
QUICK = {"counts": {"train": 16, "valid": 8, "test": 8}, "seconds": 4.0, "epochs": 1,
         "probe_epochs": 5}
# Probe head training for the demo: CLMR's protocol (Adam with coupled L2, plateau, early stop)
# with a larger step and batch 16, since 48 training clips give 3 steps per epoch (CLMR: ~390).
PROBE = {"learning_rate": 1e-2, "batch_size": 16}
OUTPUTS = ("audio", "shards", "runs", "export", "figures", "results.md", "results.json")
OBJECTIVES = (("VICReg", "vicreg", "experiments/demo_vicreg.gin"),
              ("CLMR", "clmr", "experiments/demo_clmr.gin"))


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


def _prepare(audio_dir: str, labels_csv: str, shards_dir: str, progress: bool) -> dict:
    from data_tools import prepare  # noqa: PLC0415
    argv = ["folder", "--audio_dir", audio_dir, "--labels", labels_csv, "--name", "demo",
            # One worker decodes in this process: for a few dozen short WAVs that is faster than
            # starting decode processes (each re-imports the audio stack, ~10-20 s).
            "--out_dir", shards_dir, "--workers", "1"]
    if not progress:
        argv.append("--no_progress")
    _say("$ mssl-prepare " + " ".join(argv))
    status = prepare.main(argv)
    if status != 0:
        raise RuntimeError(f"mssl-prepare failed with status {status} (see the messages above)")
    return fileio.read_manifest(shards_dir)


def _pretrain(run_dir: str, gin_file: str, shards_dir: str, epochs: int, verbose) -> dict:
    from mssl_tf import gin_utils  # noqa: PLC0415
    from mssl_tf.train import experiment  # noqa: PLC0415
    params = [f"pretrain.data_dir = '{shards_dir}'", f"pretrain.epochs = {epochs}",
              f"WarmupCosine.warmup_epochs = {min(1, epochs - 1)}"]  # a 1-epoch run has no warmup
    _say(f"$ mssl-pretrain --model_dir {run_dir} --gin_file {gin_file} "
         + " ".join(f'--gin_param "{p}"' for p in params))
    gin_utils.parse([gin_file], params, model_dir=run_dir)
    return experiment.pretrain(run_dir, loop=experiment.TrainLoop(progress=bool(verbose)))


def run_demo(out_dir: str, *, quick: bool = False, epochs: int | None = None,
             overwrite: bool = False, progress: bool = True, export: bool = True,
             seed: int = 0) -> dict:
    """Runs the whole demo and writes its outputs under `out_dir`.

    Args:
      out_dir: output folder (created).
      quick: a reduced run (16 training clips of 4 s, one epoch) for tests.
      epochs: pre-training epochs of each objective (default 12, quick 1).
      overwrite: replace earlier demo output in `out_dir`.
      progress: progress bars (Keras, tqdm).
      export: export the VICReg encoder and its probe as a SavedModel.
      seed: seed of the corpus.

    Returns:
      The results.json dict: {"rows": [...], "timings": {...}, "settings": {...}, ...}.
    """
    import keras  # noqa: PLC0415

    from mssl_tf.eval.probe import run_probe  # noqa: PLC0415

    cfg = dict(QUICK if quick else FULL)
    if epochs is not None:
        cfg["epochs"] = int(epochs)
    os.makedirs(out_dir, exist_ok=True)
    _check_out_dir(out_dir, overwrite)
    logging.getLogger("absl").setLevel(logging.ERROR)
    import tensorflow as tf  # noqa: PLC0415
    tf.get_logger().setLevel(logging.ERROR)  # the probe's per-split tracing notes are noise here
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
    manifest = _prepare(audio_dir, made["labels_csv"], shards_dir, progress)
    timings["prepare"] = time.time() - t

    _say(f"[3/{n_stages}] Pre-training VICReg and CLMR for {cfg['epochs']} epoch(s) each. NOTE: "
         "a reduced SampleCNN (8 blocks on 19,683-sample crops, widths 16-64, 64-d output; see "
         "gin/experiments/demo_*.gin), not the thesis' 512-d encoder on 59,049 samples.")
    runs, histories = {}, {}
    for name, key, gin_file in OBJECTIVES:
        t = time.time()
        run_dir = os.path.join(out_dir, "runs", key)
        keras.utils.set_random_seed(seed)
        result = _pretrain(run_dir, gin_file, shards_dir, cfg["epochs"], verbose)
        runs[key] = {"run_dir": run_dir, "steps": int(result["step"]),
                     "seconds": time.time() - t}
        histories[name] = result["history"]
        timings[f"pretrain_{key}"] = time.time() - t

    _say(f"[4/{n_stages}] Linear probes on the frozen encoders: random init, VICReg, CLMR "
         "(CLMR's test protocol: chunk-averaged probabilities, macro ROC-AUC / PR-AUC)")
    probe_kwargs = {**PROBE, "max_epochs": cfg["probe_epochs"]}
    rows, per_tag, probe_dirs = [], {}, {}
    plan = [("random init", "vicreg", True, "none (random weights)")]
    plan += [(name, key, False, f"{cfg['epochs']} epoch(s), {runs[key]['steps']} steps, "
              f"{runs[key]['seconds']:.0f} s") for name, key, _ in OBJECTIVES]
    for name, key, random_init, text in plan:
        t = time.time()
        run_dir = runs[key]["run_dir"]
        res = run_probe(run_dir, shards_dir, head="linear", random_init=random_init,
                        checkpoint="latest", **probe_kwargs)
        probe_dir = os.path.join(run_dir, "probes", f"{res['dataset']}-{res['checkpoint']['tag']}",
                                 "linear")
        probe_dirs[name] = probe_dir
        per_tag[name] = summary.per_tag_roc_auc(os.path.join(probe_dir, "test_predictions.npz"),
                                                res["tag_names"])
        rows.append({"encoder": name, "pretraining": text, "metrics": res["metrics"],
                     "probe_dir": probe_dir, "probe_epochs": res["training"]["epochs"]})
        timings[f"probe_{name}"] = time.time() - t

    export_info = None
    if export:
        _say(f"[5/{n_stages}] Exporting the VICReg encoder and its probe as a SavedModel")
        t = time.time()
        from mssl_tf.export import ExportedModel, export_run  # noqa: PLC0415
        export_dir = os.path.join(out_dir, "export")
        export_run(runs["vicreg"]["run_dir"], export_dir, probe_dir=probe_dirs["VICReg"])
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
    figures = summary.write_figures(os.path.join(out_dir, "figures"), rows, histories, per_tag)
    timings["total"] = time.time() - start
    results = {"rows": rows, "per_tag_roc_auc": per_tag, "timings": timings,
               "settings": {"quick": quick, **cfg, "probe": probe_kwargs,
                            "gin_files": [g for _, _, g in OBJECTIVES]},
               "dataset": {"tag_names": manifest.get("tag_names"),
                           "splits": {s: v["num_tracks"] for s, v in manifest["splits"].items()}},
               "runs": runs, "export": export_info, "figures": figures}
    fileio.write_json(os.path.join(out_dir, "results.json"), results, sort_keys=False,
                      default=_json_default)
    text = _results_markdown(table, results)
    fileio.write_text(os.path.join(out_dir, "results.md"), text)
    _say("\n" + text)
    return results


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def _results_markdown(table: str, results: dict) -> str:
    splits = results["dataset"]["splits"]
    lines = ["# mssl-demo results", "",
             f"Demo corpus: {splits.get('train', 0)} train / {splits.get('valid', 0)} valid / "
             f"{splits.get('test', 0)} test clips, tags: "
             f"{', '.join(results['dataset']['tag_names'] or [])}.",
             "Encoder: a REDUCED SampleCNN (gin/experiments/demo_*.gin), so these are demo "
             "numbers on synthetic music; they are not comparable with the thesis' tables.", "",
             table, ""]
    if results["export"]:
        e = results["export"]
        lines += [f"Exported SavedModel: {e['dir']} (signatures embed, embed_track, tag). "
                  f"Example {e['example_clip']}: true tags {', '.join(e['example_true_tags'])}; "
                  f"top predicted {', '.join(e['example_top_tags'])}.", ""]
    lines += ["Figures: " + ", ".join(os.path.basename(p) for p in results["figures"])
              + " (in figures/).", "",
              "Time per stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                  results["timings"].items()), ""]
    return "\n".join(lines)
