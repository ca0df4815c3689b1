"""What every console script shares: fast, quiet --help/--version, one flag vocabulary."""

import argparse
import importlib
import logging
import os
import subprocess
import sys
import time

import pytest

from mssl_tf.cli import common

COMMANDS = ("pretrain", "probe", "export", "embed", "report", "demo")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _parser(name):
    return importlib.import_module(f"mssl_tf.cli.{name}").build_parser()


def test_help_and_version_answer_fast_without_tensorflow_or_keras():
    probe = ("import sys\n"
             "from mssl_tf.cli import {name} as cli\n"
             "for flag in ('--help', '--version'):\n"
             "    try:\n"
             "        cli.main([flag])\n"
             "    except SystemExit as e:\n"
             "        assert e.code == 0, e.code\n"
             "heavy = [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules]\n"
             "assert not heavy, heavy\n")
    for name in COMMANDS:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", f"mssl_tf.cli.{name}", "--help"],
                              capture_output=True, text=True, env=_env(), cwd=ROOT)
        seconds = time.perf_counter() - start
        assert done.returncode == 0 and f"usage: mssl-{name}" in done.stdout, done.stderr
        assert done.stderr == ""
        assert seconds < 1.5, (name, seconds)
        done = subprocess.run([sys.executable, "-c", probe.format(name=name)],
                              capture_output=True, text=True, env=_env(), cwd=ROOT)
        assert done.returncode == 0, (name, done.stderr)
        assert f"mssl-{name} (mssl_tf) " in done.stdout


def test_version_is_the_package_version(capsys):
    from mssl_tf.version import __version__
    with pytest.raises(SystemExit) as e:
        _parser("probe").parse_args(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"mssl-probe (mssl_tf) {__version__}"


def test_every_flag_has_help_and_the_vocabulary_agrees():
    for name in COMMANDS:
        parser = _parser(name)
        flags = {}
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
            for option in action.option_strings:
                flags[option] = action
        for shared in ("--version", "--verbosity", "--no_progress", "--help"):
            assert shared in flags, (name, shared)
        if name != "pretrain":
            assert "--out" in flags, name
        assert "--out_dir" not in parser.format_help(), name  # old spelling: hidden alias
    for name in ("probe", "export"):
        assert _parser(name).parse_args(["--model_dir", "r", "--data_dir", "d", "--out", "o"]
                                        if name == "probe" else
                                        ["--model_dir", "r", "--out", "o"]).checkpoint == "latest"
    assert "(default: latest)" in " ".join(_parser("probe").format_help().split())


def test_old_flag_spellings_still_work():
    args = _parser("export").parse_args(["--model_dir", "r", "--probe", "p", "--out_dir", "o"])
    assert args.probe_dir == "p" and args.out == "o"
    help_text = _parser("export").format_help()
    assert "--probe_dir" in help_text and "--probe " not in help_text
    assert _parser("report").parse_args(["run", "--out_dir", "o"]).out == "o"
    assert _parser("probe").parse_args(["--model_dir", "r", "--data_dir", "d",
                                        "--out_dir", "o"]).out == "o"
    assert _parser("demo").parse_args(["--out_dir", "o"]).out == "o"


def test_verbosity_sets_logging_and_progress(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    parser = common.make_parser("mssl-x", "test")
    args = parser.parse_args(["--verbosity", "-1"])  # absl's integer for warning
    assert args.verbosity == "warning" and common.progress_enabled(args)
    common.setup(args)
    assert logging.getLogger().level == logging.WARNING
    args = parser.parse_args(["--no_progress", "--verbosity", "debug"])
    assert not common.progress_enabled(args) and common.keras_verbose(args) == 0
    common.setup(args)
    assert logging.getLogger().level == logging.DEBUG and os.environ["TQDM_DISABLE"] == "1"
    # tqdm reads TQDM_DISABLE when it is imported: check in a fresh process, as a command runs.
    code = ("from mssl_tf.cli import common; p = common.make_parser('mssl-x', 't'); "
            "common.setup(p.parse_args(['--no_progress'])); "
            "from tqdm import tqdm; print(tqdm(range(2)).disable)")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.stdout.strip() == "True", out.stderr[-2000:]
    common.setup(parser.parse_args([]))  # back to info for the tests that follow


def test_bad_flags_are_argparse_errors_not_tracebacks(capsys):
    with pytest.raises(SystemExit) as e:
        _parser("report").parse_args(["run", "--out", "o", "--verbosity", "loud"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "mssl-report: error: argument --verbosity" in err and "debug, info" in err
    assert common.error("mssl-x", "bad thing") == 2
    assert capsys.readouterr().err == "mssl-x: error: bad thing\n"


@pytest.mark.slow
def test_tensorflow_start_up_lines_are_hidden_unless_asked_for(tmp_path):
    """A command that imports TensorFlow prints only its own error: no oneDNN/absl lines."""
    cmd = [sys.executable, "-m", "mssl_tf.cli.probe", "--model_dir", str(tmp_path),
           "--data_dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mssl-probe: error:"), done.stderr
    assert "not a pre-training run" in lines[0]
    # A user who sets TF_CPP_MIN_LOG_LEVEL sees what TensorFlow prints.
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env=_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert "oneDNN" in done.stderr and done.returncode == 2


# Each command with --out of the wrong kind: a file where it writes a folder, a folder where it
# writes a file. The other arguments need not exist: the output is checked first.
WRONG_OUT = {
    "probe": (["--model_dir", "RUN", "--data_dir", "DATA"], "file"),
    "export": (["--model_dir", "RUN"], "file"),
    "report": (["RUN"], "file"),
    "demo": ([], "file"),
    "embed": (["song.wav", "--model", "RUN"], "folder"),
}


@pytest.mark.parametrize("command", sorted(WRONG_OUT))
def test_an_output_of_the_wrong_kind_is_named_before_any_work(command, tmp_path, capsys):
    """mssl-probe, mssl-export and mssl-report ended in a FileExistsError or TensorFlow
    FailedPreconditionError traceback when --out named a file; mssl-embed, given a folder,
    offered --overwrite, which would only fail after embedding everything."""
    args, existing = WRONG_OUT[command]
    out = tmp_path / "taken"
    if existing == "file":
        out.write_text("keep me")
    else:
        out.mkdir()
        (out / "keep.txt").write_text("keep me")
    module = importlib.import_module(f"mssl_tf.cli.{command}")
    assert module.main([*args, "--out", str(out), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{module.PROG}: error: --out {out} is a {existing}")
    assert "Traceback" not in err
    kept = out if existing == "file" else out / "keep.txt"
    assert kept.read_text() == "keep me"
    if existing == "folder":
        assert os.listdir(out) == ["keep.txt"]
        assert os.path.join(str(out), "embeddings.npz") in err


def test_wrong_output_kind_leaves_new_and_remote_paths_alone(tmp_path):
    assert common.wrong_output_kind("--out", str(tmp_path / "new"), folder=True) is None
    assert common.wrong_output_kind("--out", str(tmp_path / "new.npz"), folder=False) is None
    assert common.wrong_output_kind("--out", str(tmp_path), folder=True) is None
    assert common.wrong_output_kind("--out", "gs://bucket/x", folder=False) is None
    assert common.wrong_output_kind("--out", None, folder=True) is None
