"""A Celery config module (DRUMLINE_CELERY_CONFIG_MODULE) with one ordinary beat entry."""

beat_schedule = {
    "static-ping": {
        "task": "tests.static_ping",
        "schedule": 0.5,
        "options": {"queue": "static-test"},
    }
}
