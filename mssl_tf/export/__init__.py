"""mssl_tf.export (filled in by its issue)."""
