"""Keras-only models: SampleCNN encoder, projectors, probe heads and the SSLModel."""

from mssl_tf.models.heads import (
                                  build_clmr_projector,
                                  build_probe_head,
                                  build_projector,
                                  build_vicreg_projector,
                                  parse_spec,
)
from mssl_tf.models.layers import GhostBatchNormalization, initializers
from mssl_tf.models.sample_cnn import build_sample_cnn, check_crop_len, reduced_length
from mssl_tf.models.ssl_model import LocalCollectives, SSLModel, effective_rank, mean_std
