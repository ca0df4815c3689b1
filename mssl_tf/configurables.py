"""gin registrations of the Keras classes and library builders used from gin files.

Library code stays plain Python; gin files refer to these names. Keras Layer/Model subclasses are
registered with `gin.external_configurable` (decorating them directly crashes Keras 3).
"""

import gin
import keras

from mssl_tf import models

# Keras built-ins used from gin/optimization/*.gin.
gin.external_configurable(keras.optimizers.Adam, "Adam", module="keras.optimizers")
gin.external_configurable(keras.optimizers.SGD, "SGD", module="keras.optimizers")
gin.external_configurable(keras.optimizers.AdamW, "AdamW", module="keras.optimizers")

# Model builders.
gin.external_configurable(models.build_sample_cnn, "build_sample_cnn", module="mssl_tf.models")
gin.external_configurable(models.build_projector, "build_projector", module="mssl_tf.models")
gin.external_configurable(models.build_probe_head, "build_probe_head", module="mssl_tf.models")
