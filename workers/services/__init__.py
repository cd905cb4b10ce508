"""What the tasks do, with no Celery in it: lifecycle changes, runs, locks, time limits."""
