"""`mssl-prepare`'s command line: flags, help, errors in argparse style, bad input, imports."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from data_tools import prepare
from mssl_tf.version import __version__
from tests.data_tools import fixtures

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _folder(root, good=2, broken=()):
    audio_dir = os.path.join(str(root), "music")
    for i in range(good):
        fixtures.write_audio(os.path.join(audio_dir, f"good{i}.wav"), 3.0, 22050, 300.0 + i)
    for name in broken:
        path = os.path.join(audio_dir, name)
        if name.startswith("short"):
            fixtures.write_audio(path, 0.5, 22050)
        elif name.startswith("empty"):
            fixtures.write_empty(path)
        else:
            fixtures.write_text(path)
    return audio_dir


def test_every_flag_has_help_and_out_dir_is_a_hidden_alias():
    parser = prepare.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == {"fma", "gtzan", "mtat", "folder", "verify"}
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
            if action.dest == "out":
                assert action.option_strings == ["--out", "--out_dir"]
                assert action.hidden_aliases == ("--out_dir",)
        text = command.format_help()
        assert "--out DIR" in text and "--out_dir" not in text.replace("--out DIR", "")
    assert "(default: 50)" in sub.choices["mtat"].format_help()


def test_version_and_help_import_no_tensorflow():
    code = ("import sys\nfrom data_tools import prepare\n"
            "for argv in (['--help'], ['folder', '--help'], ['verify', '--help'], ['--version']):\n"
            "    try:\n        prepare.main(argv)\n    except SystemExit:\n        pass\n"
            "print('TF-LOADED' if 'tensorflow' in sys.modules else 'TF-FREE')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.strip().endswith("TF-FREE"), result.stdout + result.stderr
    assert f"mssl-prepare (mssl_tf) {__version__}" in result.stdout


def test_errors_are_printed_in_argparse_style(tmp_path, capsys):
    assert prepare.main(["folder", "--audio_dir", str(tmp_path / "nope"),
                         "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mssl-prepare: error: --audio_dir") and "not a folder" in err
    with pytest.raises(SystemExit) as info:
        prepare.main(["folder", "--audio_dir", str(tmp_path)])  # no output folder
    assert info.value.code == 2
    assert "mssl-prepare: error: the following arguments are required: --out" in \
        capsys.readouterr().err


def test_out_naming_a_file_is_a_clear_error(tmp_path, capsys):
    audio_dir = _folder(tmp_path, good=1)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for out in (str(a_file), str(a_file / "sub")):
        assert prepare.main(["folder", "--audio_dir", audio_dir, "--out", out,
                             "--workers", "1", "--no_progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mssl-prepare: error: --out {out}") and "Traceback" not in err
        assert "folder" in err
    assert a_file.read_text() == "x"


def test_every_file_skipped_exits_non_zero_with_reasons_and_no_shard(tmp_path, capsys):
    audio_dir = _folder(tmp_path, good=0, broken=("short.wav", "text.wav", "empty.wav"))
    out = tmp_path / "out"
    assert prepare.main(["folder", "--audio_dir", audio_dir, "--out", str(out), "--workers", "1",
                         "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mssl-prepare: error: music: every track was skipped (3)")
    assert "short.wav: too short" in err and "empty.wav: empty file" in err
    assert "text.wav: not decodable" in err
    assert os.listdir(out) == []  # no empty shard, no manifest, no progress records


def test_nothing_listed_exits_non_zero_with_reasons(tmp_path, capsys):
    audio_dir = _folder(tmp_path, good=1)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,labels\nmissing.wav,rock\n")
    assert prepare.main(["folder", "--audio_dir", audio_dir, "--labels", str(labels),
                         "--out", str(tmp_path / "out"), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "no track to convert" in err and "good0.wav: audio file not listed" in err


@pytest.mark.parametrize("row,why", [("good0.wav", "1 field(s), the header names 2"),
                                     ("good0.wav,rock,train,x", "4 field(s), the header names 3"),
                                     (",rock", "the path field is empty")])
def test_labels_rows_with_missing_fields_name_file_and_line(tmp_path, capsys, row, why):
    audio_dir = _folder(tmp_path, good=1)
    labels = tmp_path / "labels.csv"
    header = "path,labels,split" if row.count(",") == 3 else "path,labels"
    labels.write_text(f"{header}\ngood1.wav,jazz{',train' if 'split' in header else ''}\n"
                      f"{row}\n")
    assert prepare.main(["folder", "--audio_dir", audio_dir, "--labels", str(labels),
                         "--out", str(tmp_path / "out"), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert f"--labels {labels} line 3: {why}" in err
    assert not os.path.exists(tmp_path / "out")


def test_console_names_the_skipped_files(tmp_path, capsys):
    audio_dir = _folder(tmp_path, good=2, broken=("short.wav", "text.wav"))
    out = str(tmp_path / "out")
    assert prepare.main(["folder", "--audio_dir", audio_dir, "--out_dir", out, "--workers", "1",
                         "--no_progress"]) == 0  # the old spelling still works
    printed = capsys.readouterr().out
    assert "2 skipped" in printed
    assert "  short.wav: too short" in printed and "  text.wav: not decodable" in printed
    # verify takes --out, like every other command, and the folder as before.
    assert prepare.main(["verify", "--out", out]) == 0
    assert capsys.readouterr().out.startswith(f"OK {out}: music, train 2")
    assert prepare.main(["verify", out]) == 0


@pytest.mark.slow
def test_conversion_parent_imports_no_model_code(tmp_path):
    audio_dir = _folder(tmp_path, good=3)
    code = ("import json, sys\nfrom data_tools import prepare\n"
            f"status = prepare.main(['folder', '--audio_dir', {audio_dir!r}, '--out', "
            f"{str(tmp_path / 'out')!r}, '--workers', '2', '--no_progress'])\n"
            "print(json.dumps([status, sorted(m for m in sys.modules "
            "if m.startswith('mssl_tf'))]))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    status, modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == 0, result.stderr
    # The record schema, the file helpers and the shared command-line helpers only: no
    # pipeline, model or training code.
    assert set(modules) <= {"mssl_tf", "mssl_tf.version", "mssl_tf.constants", "mssl_tf.fileio",
                            "mssl_tf.data", "mssl_tf.data.features", "mssl_tf.cli",
                            "mssl_tf.cli.common"}, modules


def test_a_folder_without_audio_files_says_which_extensions_were_looked_for(tmp_path, capsys):
    """An empty folder, or one of unsupported files, gets a message naming the folder and the
    extensions read (it said "no track to convert (0 skipped while listing):" and nothing more)."""
    audio_dir = tmp_path / "music"
    (audio_dir / "sub").mkdir(parents=True)
    (audio_dir / "sub" / "song.m4a").write_bytes(b"\0" * 64)
    (audio_dir / "notes.txt").write_text("x")
    out = tmp_path / "out"
    assert prepare.main(["folder", "--audio_dir", str(audio_dir), "--out", str(out),
                         "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mssl-prepare: error: --audio_dir {audio_dir}: no audio file")
    for ext in (".wav", ".mp3", ".flac", ".ogg", ".au"):
        assert ext in err
    assert "subfolders" in err and not err.rstrip().endswith(":")
    assert not out.exists() or os.listdir(out) == []


@pytest.mark.parametrize("dataset,flags,flag,what", [
    ("mtat", ["--annotations", "{missing}"], "--annotations", "annotations_final.csv"),
    ("fma", ["--tracks_csv", "{missing}"], "--tracks_csv", "fma_metadata/tracks.csv"),
    ("fma", ["--tracks_csv", "{folder}"], "--tracks_csv", "fma_metadata/tracks.csv"),
    ("folder", ["--labels", "{missing}"], "--labels", "'path' and 'labels' columns"),
])
def test_a_missing_input_file_names_its_flag(tmp_path, capsys, dataset, flags, flag, what):
    """It said "[Errno 2] No such file or directory: '...'" without the flag or the fix."""
    audio_dir = _folder(tmp_path, good=1)
    paths = {"missing": str(tmp_path / "nope.csv"), "folder": audio_dir}
    flags = [f.format(**paths) for f in flags]
    assert prepare.main([dataset, "--audio_dir", audio_dir, *flags, "--out",
                         str(tmp_path / "out"), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mssl-prepare: error: {flag} {flags[1]}: ")
    assert what in err and "Errno" not in err
    assert not (tmp_path / "out").exists()


def test_workers_below_one_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        prepare.main(["folder", "--audio_dir", str(tmp_path), "--out", str(tmp_path / "o"),
                      "--workers", "-1"])
    assert stop.value.code == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
