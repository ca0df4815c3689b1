"""Strategies and cross-replica collectives (TensorFlow side; JAX uses keras.distribution)."""

from mssl_tf.distribute.collectives import TFCollectives, cross_replica_concat, scale_loss
from mssl_tf.distribute.runtime import DeviceInfo, Runtime, choose_precision
from mssl_tf.distribute.strategy import check_global_batch, get_strategy, num_replicas
