"""mssl_tf.optim (filled in by its issue)."""
