"""`mssl-report`: probe results of many runs as the thesis' tables (Markdown) and figures (PNG).

Reads every results.json under the given run folders (written by `mssl-probe`) and lays them out
like Table 4.1 (transfer), A.1 (epochs), A.2 (representation size), B.1 (batch size) and B.2
(projectors), with the thesis' published value in brackets beside ours where the row matches,
plus Figures 4.1, 4.2 and B.1 (ours as solid markers over the thesis' curves). Probes of a
`--random_init` encoder give every table its floor row.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Iterable

from mssl_tf import fileio, rundir
from mssl_tf.eval import published

logger = logging.getLogger(__name__)

METHODS = {"vicreg": "VICReg", "ntxent": "CLMR", "clmr": "CLMR"}
NOTE = ("Linear probe, MLP probe in parentheses; [bracketed] = the thesis' published value; "
        "- = not run.")


def _dataset_label(name: str | None) -> str:
    name = (name or "?").lower()
    for prefix, label in (("fma", "FMA"), ("gtzan", "GTZAN"), ("mtat", "MTAT"),
                          ("magnatagatune", "MTAT"), ("msd", "MSD")):
        if name.startswith(prefix):
            return label
    return name


def find_results(paths: Iterable[str]) -> list[str]:
    """Every results.json under the given run (or probe) folders, sorted."""
    found = []
    for path in paths:
        if os.path.isfile(path) and path.endswith(".json"):
            found.append(path)
            continue
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path!r} is neither a run folder nor a results.json file.")
        for root, _, files in os.walk(path):
            if "results.json" in files:
                found.append(os.path.join(root, "results.json"))
    return sorted(found)


def _run_of(path: str, res: dict) -> str:
    """The run directory a results.json belongs to (RUN/probes/<dataset>-<ckpt>/<head>/...)."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    if "probes" in parts:
        return os.sep.join(parts[:len(parts) - 1 - parts[::-1].index("probes")]) or os.sep
    return str(res.get("model_dir") or os.path.dirname(os.path.abspath(path)))


def _problem(res: object) -> str | None:
    """Why a parsed results.json cannot be reported, or None when it can."""
    if not isinstance(res, dict):
        return f"it holds a JSON {type(res).__name__}, not an object"
    missing = [k for k in ("head", "dataset") if not res.get(k)]
    metrics = res.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("roc_auc"), (int, float)):
        missing.append("metrics.roc_auc")
    pre = res.get("pretrain")
    if not isinstance(pre, dict) or not pre.get("objective"):
        missing.append("pretrain.objective")
    if missing:
        return f"it lacks {', '.join(missing)}"
    return None


def load_records(paths: Iterable[str]) -> list[dict]:
    """Flattens every results.json under `paths` into one record per probe.

    A file that is not valid JSON (e.g. truncated by a kill), is not a JSON object, or lacks the
    keys a row needs is skipped with a warning naming it; the others are reported.
    """
    paths = list(paths)
    records = []
    for path in find_results(paths):
        try:
            res = fileio.read_json(path)
        except (ValueError, OSError) as e:
            logger.warning("Skipped %s: %s", path, e)
            continue
        problem = _problem(res)
        if problem:
            logger.warning("Skipped %s: %s; it is not the results.json of an mssl-probe run "
                           "(probe again to rewrite it).", path, problem)
            continue
        pre = res["pretrain"]
        m = res["metrics"]
        ckpt = res.get("checkpoint") or {}
        settings = res.get("settings") or {}
        records.append({
            "method": METHODS.get(str(pre.get("objective")).lower(), str(pre.get("objective"))),
            "pretrain": _dataset_label(pre.get("dataset")), "rep_dim": pre.get("rep_dim"),
            "batch": pre.get("global_batch"), "projector": pre.get("projector"),
            "schedule_epochs": pre.get("epochs"),
            "random_init": bool(res.get("random_init")),
            "epoch": 0 if res.get("random_init") else ckpt.get("epoch"),
            "head": res.get("head"), "probe": _dataset_label(res.get("dataset")),
            "roc_auc": m.get("roc_auc"), "pr_auc": m.get("pr_auc"),
            "accuracy": m.get("accuracy"), "created": str(res.get("created", "")),
            "bn_stats": res.get("bn_stats"),
            "standardize": bool(res.get("standardize", settings.get("standardize", False))),
            "run": _run_of(path, res), "path": path})
    if not records:
        logger.warning("No usable results.json found under %s", paths)
    return records


def _pick(records: list[dict], **match) -> dict[str, dict]:
    """{head: newest record} among records whose fields equal `match`."""
    out: dict[str, dict] = {}
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            if r["head"] not in out or r["created"] >= out[r["head"]]["created"]:
                out[r["head"]] = r
    return out


def _num(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _pair(lin, mlp) -> str:
    if mlp is None:
        return _num(lin)
    return f"{_num(lin)} ({_num(mlp)})"


def cell(ours: dict[str, dict], metric: str, thesis: tuple | None = None) -> str:
    """"ours_lin (ours_mlp) [thesis_lin (thesis_mlp)]" for one metric."""
    lin = ours.get("linear", {}).get(metric)
    mlp = ours.get("mlp", {}).get(metric)
    text = _pair(lin, mlp) if (lin is not None or mlp is not None) else "-"
    if thesis is not None:
        text += f" [{_pair(*thesis)}]"
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _latest_epoch(records: list[dict], **match) -> int | None:
    epochs = [r["epoch"] for r in records if r["epoch"] is not None and not r["random_init"]
              and all(r.get(k) == v for k, v in match.items())]
    return max(epochs) if epochs else None


def table_transfer(records: list[dict]) -> str:
    """Table 4.1: method x pre-training dataset x representation size, probed on MTAT."""
    rows, seen = [], set()
    for (method, data, rep), (roc, pr) in published.TABLE_4_1.items():
        epoch = _latest_epoch(records, method=method, pretrain=data, rep_dim=rep, probe="MTAT")
        ours = _pick(records, method=method, pretrain=data, rep_dim=rep, probe="MTAT",
                     epoch=epoch, random_init=False) if epoch is not None else {}
        seen.add((method, data, rep))
        rows.append([method, data, str(rep or "-"), str(epoch or "-"), cell(ours, "roc_auc", roc),
                     cell(ours, "pr_auc", pr)])
    extra = sorted({(r["method"], r["pretrain"], r["rep_dim"], r["probe"]) for r in records
                    if not r["random_init"]} - {k + ("MTAT",) for k in seen}, key=str)
    for method, data, rep, probe in extra:
        epoch = _latest_epoch(records, method=method, pretrain=data, rep_dim=rep, probe=probe)
        ours = _pick(records, method=method, pretrain=data, rep_dim=rep, probe=probe,
                     epoch=epoch, random_init=False)
        label = method if probe == "MTAT" else f"{method} (probed on {probe})"
        rows.append([label, data, str(rep), str(epoch or "-"), cell(ours, "roc_auc"),
                     cell(ours, "pr_auc")])
    for rep in sorted({r["rep_dim"] for r in records if r["random_init"]}, key=str):
        ours = _pick(records, random_init=True, rep_dim=rep, probe="MTAT")
        if ours:
            rows.append(["random init", "-", str(rep), "0", cell(ours, "roc_auc"),
                         cell(ours, "pr_auc")])
    return _table(["Method", "Dataset", "Repr. Size", "Epochs", "ROC-AUC", "PR-AUC"], rows)


def _by_method_table(records: list[dict], key: str, thesis: dict, label: str,
                     methods: tuple[str, ...] = ("CLMR", "VICReg"), **match) -> str:
    """Rows by `key` (epochs or rep size), ROC/PR column pairs per method (A.1, A.2 layout)."""
    values = set(thesis) | {r[key] for r in records if not r["random_init"]
                            and r[key] is not None and all(r.get(k) == v
                                                           for k, v in match.items())}
    rows = []
    for value in sorted(values):
        row = [str(value)]
        for method in methods:
            sel = dict(match, method=method, random_init=False, **{key: value})
            if key != "epoch":
                sel["epoch"] = _latest_epoch(records, **{k: v for k, v in sel.items()
                                                         if k != "epoch"})
            ours = _pick(records, **sel)
            ref = thesis.get(value, {}).get(method)
            row += [cell(ours, "roc_auc", ref and ref[0]), cell(ours, "pr_auc", ref and ref[1])]
        rows.append(row)
    floor = [r for r in records if r["random_init"] and all(
        r.get(k) == v for k, v in match.items() if k != "rep_dim")]
    if floor:
        row = ["random init"]
        for method in methods:
            ours = _pick(floor, method=method)
            row += [cell(ours, "roc_auc"), cell(ours, "pr_auc")]
        rows.append(row)
    header = [label] + [f"{m} {metric}" for m in methods for metric in ("ROC-AUC", "PR-AUC")]
    return _table(header, rows)


def table_epochs(records: list[dict]) -> str:
    """Table A.1: checkpoint epoch rows, representation 512, probed on MTAT."""
    return _by_method_table(records, "epoch", published.TABLE_A_1, "Epochs", rep_dim=512,
                            probe="MTAT")


def table_rep_size(records: list[dict]) -> str:
    """Table A.2: representation size rows, probed on MTAT."""
    return _by_method_table(records, "rep_dim", published.TABLE_A_2, "Representation",
                            methods=("VICReg", "CLMR"), probe="MTAT")


def table_batch(records: list[dict]) -> str:
    """Table B.1: VICReg global batch size rows, representation 512, probed on MTAT."""
    thesis = {b: {"VICReg": s} for b, s in published.TABLE_B_1.items()}
    return _by_method_table(records, "batch", thesis, "Batch Size", methods=("VICReg",),
                            rep_dim=512, probe="MTAT")


def table_projectors(records: list[dict]) -> str:
    """Table B.2: backbone objective rows, projector column pairs, probed on MTAT."""
    rows = []
    for method in ("CLMR", "VICReg"):
        row = [method]
        for projector in ("clmr", "vicreg"):
            sel = {"method": method, "projector": projector, "rep_dim": 512, "probe": "MTAT",
                   "random_init": False}
            ours = _pick(records, epoch=_latest_epoch(records, **sel), **sel)
            ref = published.TABLE_B_2.get((method, projector))
            row += [cell(ours, "roc_auc", ref and ref[0]), cell(ours, "pr_auc", ref and ref[1])]
        rows.append(row)
    return _table(["Backbone", "CLMR proj. ROC-AUC", "CLMR proj. PR-AUC",
                   "VICReg proj. ROC-AUC", "VICReg proj. PR-AUC"], rows)


def table_all(records: list[dict]) -> str:
    """Every probe, one row each (also single-label accuracy)."""
    rows = []
    for r in sorted(records, key=lambda r: (r["method"], str(r["pretrain"]), str(r["rep_dim"]),
                                            str(r["batch"]), r["epoch"] or 0, r["head"])):
        rows.append([r["method"] if not r["random_init"] else f"{r['method']} (random init)",
                     str(r["pretrain"]), str(r["rep_dim"]), str(r["batch"]),
                     str(r["projector"]), str(r["epoch"]), r["head"], r["probe"],
                     _num(r["roc_auc"]), _num(r["pr_auc"]), _num(r["accuracy"]),
                     os.path.relpath(r["path"])])
    return _table(["Method", "Pre-train", "Repr.", "Batch", "Projector", "Epoch", "Head",
                   "Probe", "ROC-AUC", "PR-AUC", "Accuracy", "results.json"], rows)


def floor_note(records: list[dict]) -> str:
    """Which random-init floor the tables show (BatchNorm statistics, feature scaling)."""
    kinds = []
    for r in records:
        if not r["random_init"]:
            continue
        bn = (f"BatchNorm statistics {r['bn_stats']}" if r.get("bn_stats") else
              "BatchNorm at its initial statistics (mean 0, variance 1)")
        scaling = ("features standardized with train-split statistics" if r["standardize"]
                   else "unscaled features (CLMR's protocol)")
        kind = f"{r['method']} architecture, representation {r['rep_dim']}: {bn}; {scaling}"
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        return ("No random-init probe was found, so the tables have no floor row (run mssl-probe "
                "--random_init to add one).")
    return "Random-init floor rows: " + " | ".join(kinds) + "."


def epochs_note(records: list[dict], rep_dim: int = 512, probe: str = "MTAT") -> str:
    """Whether Table A.1's rows are snapshots of one run or separate runs of their own length.

    A probe of the snapshot at epoch e of a run whose schedule lasts E epochs (run.json "epochs")
    is a snapshot when e < E, and a separate run with its own schedule when e == E.
    """
    rows = [r for r in records if not r["random_init"] and r["rep_dim"] == rep_dim
            and r["probe"] == probe and r["epoch"] is not None]
    if not rows:
        return ""
    parts = []
    for method in sorted({r["method"] for r in rows}):
        mine = [r for r in rows if r["method"] == method]
        snaps = sorted({r["epoch"] for r in mine if r["schedule_epochs"] is not None
                        and r["epoch"] < r["schedule_epochs"]})
        whole = sorted({r["epoch"] for r in mine if r["schedule_epochs"] is not None
                        and r["epoch"] >= r["schedule_epochs"]})
        unknown = sorted({r["epoch"] for r in mine if r["schedule_epochs"] is None})
        text = []
        if snaps:
            lengths = sorted({r["schedule_epochs"] for r in mine if r["epoch"] in snaps
                              and r["schedule_epochs"] is not None})
            text.append(f"epochs {', '.join(map(str, snaps))} are snapshots of a run scheduled "
                        f"for {', '.join(map(str, lengths))} epochs")
        if whole:
            text.append(f"epochs {', '.join(map(str, whole))} are separate runs, each with a "
                        "schedule of that length")
        if unknown:
            text.append(f"epochs {', '.join(map(str, unknown))}: schedule length not recorded")
        parts.append(f"{method}: " + "; ".join(text))
    return "Rows shown: " + ". ".join(parts) + "."


def markdown(records: list[dict], figures: dict[str, str] | None = None) -> str:
    """The whole report as Markdown."""
    parts = ["# Probe report", "", f"{len(records)} probe result(s). {NOTE}", ""]
    sections = [("Table 4.1: transfer (probed on MTAT)", table_transfer(records),
                 floor_note(records)),
                ("Table A.1: pre-training epochs (representation 512)", table_epochs(records),
                 epochs_note(records)),
                ("Table A.2: representation size", table_rep_size(records), ""),
                ("Table B.1: VICReg batch size (representation 512)", table_batch(records), ""),
                ("Table B.2: projectors (representation 512)", table_projectors(records), ""),
                ("All probes", table_all(records), "")]
    for title, table, note in sections:
        parts += [f"## {title}", "", table, ""]
        if note:
            parts += [note, ""]
    for title, path in (figures or {}).items():
        parts += [f"## {title}", "", f"![{title}]({os.path.basename(path)})", ""]
    return "\n".join(parts)


def find_runs(paths: Iterable[str], records: list[dict]) -> list[str]:
    """Run directories (holding run.json) under `paths` or owning one of the records."""
    runs = {r["run"] for r in records}
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if d != rundir.PROBES_DIR]
                if rundir.RUN_JSON in files:
                    runs.add(os.path.abspath(root))
    return sorted(r for r in runs if os.path.isfile(os.path.join(r, rundir.HISTORY_CSV)))


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def load_history(run_dir: str) -> dict[str, list[float]] | None:
    """RUN/history.csv as {column: values}, with a "step" column in every case.

    Runs written by Keras' CSVLogger have no step column (their epoch is 0-based): the step is
    then (epoch + 1) * steps_per_epoch from run.json. Returns None (with a warning naming the
    file) when the file cannot be read or has no loss column.
    """
    csv_path = os.path.join(run_dir, rundir.HISTORY_CSV)
    try:
        rows = list(csv.DictReader(io.StringIO(fileio.read_text(csv_path))))
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        logger.warning("Skipped %s: %s", csv_path, e)
        return None
    rows = [r for r in rows if r.get("epoch") not in (None, "", "epoch")]
    if not rows or "loss" not in rows[0]:
        logger.warning("Skipped %s: no rows with a loss column.", csv_path)
        return None
    columns = {k: [_float(r.get(k)) for r in rows] for k in rows[0] if k}
    if "step" not in columns:
        try:
            spe = int(fileio.read_json(os.path.join(run_dir, rundir.RUN_JSON))["steps_per_epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            spe = None
        if spe is None:
            logger.warning("%s has no step column and run.json no steps_per_epoch: plotting "
                           "against epochs.", csv_path)
            spe = 1
        columns["step"] = [(e + 1) * spe for e in columns["epoch"]]
    return columns


def write_report(paths: Iterable[str], out_dir: str) -> dict:
    """Writes out_dir/report.md, records.json and the PNG figures.

    Returns:
      {"markdown": path, "figures": {title: path}, "records": number of probes}.

    Raises:
      FileNotFoundError: a path is neither a folder nor a results.json file.
      ValueError: no usable results.json under `paths`; nothing is written.
    """
    from mssl_tf.eval import figures  # noqa: PLC0415  (matplotlib only when drawing)

    paths = list(paths)
    records = load_records(paths)
    if not records:
        raise ValueError(f"no usable results.json under {', '.join(paths)}; run mssl-probe on "
                         "those runs first.")
    histories = {}
    for run in find_runs(paths, records):
        history = load_history(run)
        if history is not None:
            histories[run] = history
    fileio.makedirs(out_dir)
    figs = figures.draw_all(records, out_dir, histories=histories)
    md_path = os.path.join(out_dir, "report.md")
    fileio.write_text(md_path, markdown(records, figs))
    fileio.write_json(os.path.join(out_dir, "records.json"), records, sort_keys=False)
    return {"markdown": md_path, "figures": figs, "records": len(records),
            "runs": sorted(histories)}
