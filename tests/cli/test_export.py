"""`mssl-export` end to end: a run + its probe -> SavedModel folder; bad input exits with 2."""

import json
import os
import sys

import numpy as np
import pytest

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mssl_tf.cli import export as cli  # noqa: E402
from tests.export.helpers import make_probed_run  # noqa: E402


@pytest.fixture(scope="module")
def probed_run(tmp_path_factory):
    return make_probed_run(tmp_path_factory.mktemp("probed_run"))


@pytest.mark.slow
def test_mssl_export_writes_every_signature(probed_run, tmp_path, capsys):
    run_dir, probe_dir, _ = probed_run
    out = str(tmp_path / "export")
    assert cli.main(["--model_dir", run_dir, "--probe", probe_dir, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "signatures embed, embed_track, embed_chunks, tag, tag_chunks" in printed
    assert "2187 samples" in printed
    with open(os.path.join(out, "export.json")) as f:
        info = json.load(f)
    with open(os.path.join(probe_dir, "results.json")) as f:
        assert info["tag_names"] == json.load(f)["tag_names"]
    from mssl_tf.export import ExportedModel
    model = ExportedModel(out)
    track = np.random.default_rng(0).uniform(-1, 1, 2187 * 4).astype(np.float32)
    assert set(model.tag(track)) == set(info["tag_names"])
    # Exporting again into the same folder is refused, then allowed with --overwrite.
    assert cli.main(["--model_dir", run_dir, "--out", out]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["--model_dir", run_dir, "--out", out, "--overwrite", "--checkpoint", "1"]) == 0
    with open(os.path.join(out, "export.json")) as f:
        info = json.load(f)
    assert info["signatures"] == ["embed", "embed_track", "embed_chunks"]
    assert info["source"]["epoch"] == 1


def test_mssl_export_bad_input(tmp_path, capsys):
    assert cli.main(["--model_dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "mssl-export: error:" in err and "not a pre-training run" in err
    assert not os.path.exists(tmp_path / "o")
    with pytest.raises(SystemExit):
        cli.main(["--model_dir", str(tmp_path)])  # --out is required
