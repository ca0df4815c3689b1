"""mssl_tf.train (filled in by its issue)."""
