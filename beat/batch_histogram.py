"""A histogram that takes a batch of observations with one update per bucket it hits.

In multiprocess mode each value change is a locked write to a memory-mapped file
(prometheus_client's `MmapedValue.inc`), and `Histogram.observe` makes two: the sum and one
bucket. Beat observes a send lateness per slot it sends, 100 per tick at the default batch:
200 writes, about 0.4 ms, 3 % of a tick. The slots of one batch fall into a few buckets, so
counting them per bucket first costs a few writes per tick instead.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from math import isnan

from prometheus_client import Histogram


class BatchHistogram(Histogram):
    """A `Histogram` with `observe_batch`; served and merged like any other histogram."""

    def observe_batch(self, amounts: Iterable[float]) -> None:
        """The same buckets, count and sum as `observe` called once per amount."""
        self._raise_if_not_observable()
        values = list(amounts)
        if not values:
            return
        total = sum(values)
        # As in `observe`, a NaN is added to the sum but falls in no bucket (nor sorts).
        ordered = sorted(v for v in values if not isnan(v)) if isnan(total) else sorted(values)
        self._sum.inc(total)
        counted = 0
        for bucket, bound in zip(self._buckets, self._upper_bounds, strict=True):
            # `observe` puts an amount in the first bucket whose bound is at least the amount.
            at_most = bisect_right(ordered, bound)
            if at_most > counted:
                bucket.inc(at_most - counted)
                counted = at_most
