"""Celery app, the job outbox (persist → relay → claim → finish/retry/dead) and the one task."""
