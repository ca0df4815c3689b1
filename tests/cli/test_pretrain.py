"""`mssl-pretrain`'s command line: what it says when the gin config cannot start a run."""

import os

import gin
import pytest

from mssl_tf.cli import pretrain as cli


@pytest.fixture(autouse=True)
def _clear_gin():
    """The CLI parses gin into the global config; leave none behind for other tests."""
    yield
    gin.clear_config()


@pytest.mark.parametrize("gin_file", ["experiments/demo_vicreg.gin",
                                      "experiments/small_clmr.gin",
                                      "experiments/vicreg_base.gin"])
def test_a_config_without_data_says_how_to_give_it(tmp_path, capsys, gin_file):
    """These files bind no dataset; the run must stop naming the file and the binding to add,
    before it creates anything (gin's own error was a RuntimeError traceback)."""
    model_dir = str(tmp_path / "run")
    assert cli.main(["--model_dir", model_dir, "--gin_file", gin_file]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mssl-pretrain: error: ")
    assert "Traceback" not in err
    assert gin_file in err and "pretrain.data_dir" in err
    assert "--gin_param \"pretrain.data_dir = 'DIR'\"" in err
    assert "datasets/" in err  # the other fix: include a dataset's gin file
    assert not os.path.exists(model_dir)
