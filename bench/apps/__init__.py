"""Celery apps for the peers and baselines, importable by `celery -A` in child processes.

Each reads `BENCH_REDIS_URL` (and, for django-celery-beat, `BENCH_DJANGO_DB_URL`).
"""
