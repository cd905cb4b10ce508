"""`celery -A workers.app worker | beat | flower`: the name users type for drumline's Celery app.

The app, its worker signals and its settings live in `workers/tasks/app.py`, beside the tasks.
"""

from workers.tasks.app import app

__all__ = ["app"]
