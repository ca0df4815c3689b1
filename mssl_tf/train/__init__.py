"""Pre-training: the gin entry point, its callbacks and the resumable backup (TensorFlow side)."""

from mssl_tf.train import callbacks, checkpoints, experiment
from mssl_tf.train.experiment import NonFiniteLossError, pretrain
