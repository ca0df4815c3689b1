"""mssl_tf.losses (filled in by its issue)."""
