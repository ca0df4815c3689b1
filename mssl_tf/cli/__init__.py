"""mssl_tf.cli (filled in by its issue)."""
