"""colab/reproduce_tpu.ipynb executed top to bottom in SMOKE mode (CPU, demo corpus)."""

import copy
import os

import nbformat
import pytest

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "..", "colab", "reproduce_tpu.ipynb")


def _load():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return nbformat.read(f, as_version=4)


def _with_parameters(nb, source):
    """Papermill-style injection: a code cell right after the cell tagged `parameters`."""
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells)
                 if "parameters" in c.get("metadata", {}).get("tags", []))
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)
    return nb


def _outputs_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/plain", ""))
        parts.append(data.get("text/markdown", ""))
    return "".join(parts)


def test_notebook_is_a_client_of_the_package():
    nb = _load()
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    # No library code: no model, loss or training loop defined in the notebook.
    for forbidden in ("class ", "keras.layers", "keras.Model(", "GradientTape", ".fit("):
        assert forbidden not in code, forbidden
    for tool in ("mssl-prepare", "mssl-pretrain", "mssl-probe", "mssl-report", "mssl-export"):
        assert f'tool("{tool}")' in code, tool
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for field in ("GCS_BUCKET", "DATASET", "EXPERIMENT", "EPOCHS", "SMOKE"):
        assert f"{field} = " in params.source and "#@param" in params.source, field
    assert "tensorflow-tpu==2.20.0" in code and "libtpu-tf-releases" in code


def _cell(nb, text):
    return next(c.source for c in nb.cells if c.cell_type == "code" and text in c.source)


def test_bucket_is_asked_once_and_gcs_auth_and_tensorboard_cells_exist():
    nb = _load()
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count('"gs://') == 1  # the GCS_BUCKET parameter; every path derives from it
    assert 'PROBE_DATA = f"{ROOT}/data/{PROBE_DATASET}"' in code
    auth = _cell(nb, "authenticate_user")
    assert "from google.colab import auth" in auth and "ImportError" in auth
    board = _cell(nb, "tensorboard")
    assert '"--logdir {RUN}/logs"' in board.replace("f\"", "\"")
    assert code.index("tensorboard") < code.index('tool("mssl-pretrain")')


def test_sh_streams_output_line_by_line(capsys):
    """`sh` prints each line when the command writes it, not when the command ends."""
    import subprocess
    import sys
    import time
    namespace = {"os": os, "subprocess": subprocess, "sys": sys}
    exec(_cell(_load(), "def sh(").split("def tool(")[0], namespace)  # noqa: S102

    class Clock:
        def __init__(self):
            self.seen = []

        def write(self, text):
            if text.strip():
                self.seen.append((text.strip(), time.perf_counter()))

        def flush(self):
            pass

    clock = Clock()
    real = sys.stdout
    sys.stdout = clock
    try:
        namespace["sh"](sys.executable, "-c",
                        "import time; print('first'); time.sleep(1.5); print('second')")
    finally:
        sys.stdout = real
    times = dict(clock.seen)
    assert times["second"] - times["first"] > 1.0
    with pytest.raises(RuntimeError, match="exited with status 3"):
        namespace["sh"](sys.executable, "-c", "raise SystemExit(3)")


@pytest.mark.slow
def test_notebook_runs_green_in_smoke_mode(tmp_path):
    from nbclient import NotebookClient
    nb = _with_parameters(_load(), "SMOKE = True")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={
        "metadata": {"path": str(tmp_path)}})
    # The kernel inherits this process' environment (KERAS_BACKEND, TF_CPP_MIN_LOG_LEVEL from
    # tests/conftest.py) and interpreter, so it imports the installed package.
    client.execute()  # raises CellExecutionError on the first failing cell
    text = "\n".join(_outputs_text(c) for c in nb.cells if c.cell_type == "code")
    assert "accelerator: cpu | SMOKE mode" in text
    assert "is installed" in text  # nothing was reinstalled
    assert "pip install" not in text.replace("pip install -e", "")
    # Each stage left its mark: verify OK, a probe line per encoder, the report, the export.
    assert "OK " in text and text.count("linear probe on demo") == 2
    assert "signatures: ['embed', 'embed_chunks', 'embed_track', 'serving_default', 'tag', 'tag_chunks']" in text
    assert "->" in text and "embedding: (64,)" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the report's figures are shown inline"
