"""mssl_tf.eval (filled in by its issue)."""
