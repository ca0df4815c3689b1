"""mssl_tf.augment (filled in by its issue)."""
