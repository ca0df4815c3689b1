"""In-graph audio augmentation: CLMR's chain as one Keras layer built from pure per-example ops.

`AudioAugment` (layer.py) draws per-clip parameters and applies the ops of `mssl_tf.augment.ops`
(polarity, noise, gain, delay; filters.py, pitch.py and reverb.py hold the longer transforms;
draws.py the per-clip random draws).
keras.ops only: runs on the TensorFlow and JAX backends and under XLA.
"""

from mssl_tf.augment import ops
from mssl_tf.augment.layer import OPS, AudioAugment

__all__ = ["AudioAugment", "OPS", "ops"]
