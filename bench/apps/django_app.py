"""django-celery-beat's app: `celery -A bench.apps.django_app beat -S django_celery_beat...`."""

from __future__ import annotations

import os

from bench.apps.common import plain_app
from bench.djangodb import configure_django

if os.environ.get("BENCH_DJANGO_DB_URL"):
    configure_django(os.environ["BENCH_DJANGO_DB_URL"])

app = plain_app("bench-django")
