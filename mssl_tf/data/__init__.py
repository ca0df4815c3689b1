"""TFRecord schema and tf.data pipelines (TensorFlow side)."""

from mssl_tf.data import crops, features, pipeline
from mssl_tf.data.pipeline import (
                                   chunk_dataset,
                                   list_shards,
                                   single_crop_dataset,
                                   steps_per_epoch,
                                   track_dataset,
                                   two_view_dataset,
)
