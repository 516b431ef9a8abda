"""The deployed processes: the Celery app and its tasks, polling, the webhook app."""
