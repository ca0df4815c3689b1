"""Training entry points, callbacks and the run directory (TensorFlow side)."""

from mssl_tf.train import callbacks, checkpoints, experiment
from mssl_tf.train.checkpoints import build_encoder_from_run, load_encoder
from mssl_tf.train.experiment import NonFiniteLossError, pretrain
