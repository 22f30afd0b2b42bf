"""The Celery layer: app, task wrappers around schemabot functions, beat schedule."""
