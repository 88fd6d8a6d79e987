"""The weak-to-strong science engine: tasks, models, methods, experiments and metrics."""
