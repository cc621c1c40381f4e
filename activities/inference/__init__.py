"""Model inference: the `ModelBackend` protocol and the backends that implement it."""
