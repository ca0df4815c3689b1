"""mssl_tf.data (filled in by its issue)."""
