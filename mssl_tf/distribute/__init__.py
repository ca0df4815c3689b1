"""mssl_tf.distribute (filled in by its issue)."""
