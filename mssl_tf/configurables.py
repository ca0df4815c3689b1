"""gin registrations of the Keras classes and library pieces that gin files refer to.

Library code stays plain Python; gin files bind these names (`build_sample_cnn.rep_dim = 512`,
`vicreg_loss.sim_weight = 25.0`, `LARS.momentum = 0.9`, `AudioAugment.pitch_p = 0.6`) and
pass them by reference (`pretrain.loss_fn = @vicreg_loss`, `pretrain.projector =
@clmr_projector`). Keras Layer/Model/Optimizer subclasses are registered with
`gin.external_configurable` (decorating them directly crashes Keras 3). The library calls the
registered versions below so bindings apply.
"""

import gin
import keras

from mssl_tf import augment, losses, models, optim

# Keras built-ins used from gin/optimization/*.gin.
Adam = gin.external_configurable(keras.optimizers.Adam, "Adam", module="keras.optimizers")
SGD = gin.external_configurable(keras.optimizers.SGD, "SGD", module="keras.optimizers")
AdamW = gin.external_configurable(keras.optimizers.AdamW, "AdamW", module="keras.optimizers")

# Ours.
LARS = gin.external_configurable(optim.LARS, "LARS", module="mssl_tf.optim")
WarmupCosine = gin.external_configurable(optim.WarmupCosine, "WarmupCosine", module="mssl_tf.optim")
build_sample_cnn = gin.external_configurable(models.build_sample_cnn, "build_sample_cnn",
                                             module="mssl_tf.models")
vicreg_projector = gin.external_configurable(models.build_vicreg_projector, "vicreg_projector",
                                             module="mssl_tf.models")
clmr_projector = gin.external_configurable(models.build_clmr_projector, "clmr_projector",
                                           module="mssl_tf.models")
build_probe_head = gin.external_configurable(models.build_probe_head, "build_probe_head",
                                             module="mssl_tf.models")
vicreg_loss = gin.external_configurable(losses.vicreg_loss, "vicreg_loss", module="mssl_tf.losses")
nt_xent_loss = gin.external_configurable(losses.nt_xent_loss, "nt_xent_loss",
                                         module="mssl_tf.losses")
AudioAugment = (gin.external_configurable(augment.AudioAugment, "AudioAugment",
                                          module="mssl_tf.augment")
                if hasattr(augment, "AudioAugment") else None)
