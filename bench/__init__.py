"""drumline benchmarks: tick cost, dispatch rate, end-to-end throughput and lateness.

Run everything with `python -m bench --quick` (a few minutes) or `python -m bench --full`.
Peers (RedBeat, django-celery-beat) come from `pip install -e '.[bench]'`.
"""
