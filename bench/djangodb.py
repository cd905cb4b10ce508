"""Django configured in code for django-celery-beat: one database, no project."""

from __future__ import annotations

from sqlalchemy.engine import make_url


def django_database(url: str) -> dict[str, object]:
    """Django's DATABASES entry for an SQLAlchemy-style PostgreSQL or SQLite URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parsed.database}
    host = parsed.query.get("host") or parsed.host or ""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.database,
        "USER": parsed.username or "",
        "PASSWORD": parsed.password or "",
        "HOST": host if isinstance(host, str) else host[0],
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": None,
    }


def configure_django(url: str) -> None:
    """Configure and set up Django once per process (settings are process-global)."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        DATABASES={"default": django_database(url)},
        INSTALLED_APPS=["django_celery_beat"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", "django_celery_beat", verbosity=0)
