"""The Celery side: the app, its configuration, the tasks, and the boundary every message crosses.

What runs inside `celery -A workers.app worker | beat`; the work itself is done by
`workers.services`.
"""
