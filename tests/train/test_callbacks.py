"""The progress display and the history file, without training."""

import io
import logging

from mssl_tf.train.callbacks import Progress
from mssl_tf.train.history import History


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _drive(progress, steps, spe):
    progress.on_train_begin()
    for epoch in range(-(-steps // spe)):
        progress.on_epoch_begin(epoch)
        for batch in range(min(spe, steps - epoch * spe)):
            progress.on_train_batch_end(batch, {"loss": 2.0})
        progress.on_epoch_end(epoch, {"loss": 2.0})


def test_piped_output_gets_plain_lines_every_n_steps(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="mssl_tf"):
        _drive(Progress(12, 4, 0, global_batch=8, every_steps=5, stream=stream), 12, 4)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split(" |")[0] for line in lines] == ["step 5/12", "step 10/12", "step 12/12"]
    assert "epoch 2/3" in lines[0] and "epoch 3/3" in lines[2] and "ETA" in lines[0]
    assert stream.getvalue() == ""  # no carriage returns into a pipe


def test_resumed_run_counts_the_whole_run():
    stream = _Tty()
    progress = Progress(40, 4, 26, global_batch=8, stream=stream)
    progress.on_train_begin()
    progress.on_epoch_begin(6)
    progress.on_train_batch_end(0, {"loss": 1.5})
    assert "\r" in stream.getvalue()
    assert progress.line(1.5).startswith("step 27/40 | epoch 7/10")


def test_history_drops_rows_after_the_restored_step(tmp_path):
    history = History(str(tmp_path))
    for epoch in (1, 2, 3):
        history.append({"epoch": epoch, "step": 4 * epoch, "loss": 10.0 - epoch, "lr": 0.1})
    history.append({"epoch": 4, "step": 16, "loss": 5.0, "probe_roc_auc": 61.5, "lr": 0.1})
    text = open(history.path).read().splitlines()
    assert text[0] == "epoch,step,loss,probe_roc_auc,lr"
    assert text[1] == "1,4,9,,0.1"
    reread = History(str(tmp_path))
    assert reread.truncate(8) == 2
    assert [r["step"] for r in History(str(tmp_path)).rows] == ["4", "8"]
    assert reread.best_loss() == 8.0


def test_run_log_gets_info_while_a_quiet_console_stays_quiet(tmp_path):
    """`--verbosity warning` keeps INFO off the console, yet train.log still records it."""
    from mssl_tf.train.runlog import RunLog

    console = io.StringIO()
    handler = logging.StreamHandler(console)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        with RunLog(str(tmp_path)):
            logging.getLogger("mssl_tf.train.x").info("progress line")
            logging.getLogger("mssl_tf.train.x").warning("a warning")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    log = open(tmp_path / "train.log").read()
    assert "progress line" in log and "a warning" in log
    assert "progress line" not in console.getvalue() and "a warning" in console.getvalue()
