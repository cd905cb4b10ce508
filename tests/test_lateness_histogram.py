"""`LatenessHistogram.observe_batch` records what `observe` once per slot records, in the
multiprocess files the exporter merges, with one file write per bucket it hits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import Histogram, values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from beat.beat_metrics import LATENESS_BUCKETS, BeatMetrics
from beat.lateness_histogram import LatenessHistogram
from beat.metrics_files import MULTIPROC_VARIABLE
from models.types import utc_now

BUCKETS = (0.5, 1.0, 5.0)


@pytest.fixture
def multiprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's metrics go to files under tmp_path, as in beat; undone afterwards."""
    monkeypatch.setenv(MULTIPROC_VARIABLE, str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    yield tmp_path


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The key of every value written to a metrics file from now on."""
    written: list[str] = []
    write_value = MmapedDict.write_value

    def counted(self: MmapedDict, key: str, value: float, timestamp: float) -> None:
        written.append(key)
        write_value(self, key, value, timestamp)

    monkeypatch.setattr(MmapedDict, "write_value", counted)
    return written


def merged(directory: Path, name: str) -> dict[tuple[str, str], float]:
    """The samples of histogram `name` as the exporter merges them: (suffix, le) -> value."""
    samples = {}
    for family in MultiProcessCollector(None, path=str(directory)).collect():
        if family.name == name:
            for sample in family.samples:
                suffix = sample.name.removeprefix(name)
                samples[(suffix, sample.labels.get("le", ""))] = sample.value
    return samples


AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def seconds_late(*seconds: float) -> list[datetime]:
    return [AT - timedelta(seconds=s) for s in seconds]


@pytest.mark.parametrize(
    "due",
    [
        # On each bound and a microsecond past it, far past the last, and in the future (0).
        [
            *seconds_late(0, 0.2, 0.5, 1, 3, 5, 7.5, 1e6, 0.2, 3),
            *(AT - timedelta(seconds=b) - US for b in BUCKETS),
            AT + timedelta(seconds=1),
        ],
        seconds_late(*[2.0] * 100),
        seconds_late(0.1),
        [AT + US, AT + timedelta(days=1)],
    ],
)
def test_a_batch_records_what_one_observe_per_slot_records(
    multiprocess: Path, due: list[datetime]
) -> None:
    one_by_one = Histogram("one_by_one", "observe", buckets=BUCKETS, registry=None)
    batched = LatenessHistogram("batched", "observe_batch", buckets=BUCKETS, registry=None)
    for instant in due:
        one_by_one.observe(max(0.0, (AT - instant).total_seconds()))
    batched.observe_batch(reversed(due), AT)  # in any order

    expected, got = merged(multiprocess, "one_by_one"), merged(multiprocess, "batched")
    assert got.pop(("_sum", "")) == pytest.approx(expected.pop(("_sum", "")))
    assert got == expected
    assert got[("_count", "")] == len(due)


def test_a_batch_writes_once_per_bucket_it_hits_plus_the_sum(
    multiprocess: Path, writes: list[str]
) -> None:
    batched = LatenessHistogram("batched", "observe_batch", buckets=BUCKETS, registry=None)
    batched.observe_batch([], AT)
    assert writes == []
    batched.observe_batch(seconds_late(*[0.1] * 60, *[3.0] * 40), AT)  # two buckets
    assert len(writes) == 3
    assert merged(multiprocess, "batched")[("_count", "")] == 100


def test_beat_records_a_batch_lateness_per_slot_in_a_few_writes(
    multiprocess: Path, writes: list[str]
) -> None:
    metrics = BeatMetrics()
    sent_at = utc_now()
    # 100 slots 1.2 to 1.3 s late (one bucket), one 40 s late, one in the future (counted as 0).
    scheduled = [sent_at - timedelta(seconds=1.2, milliseconds=i) for i in range(100)]
    scheduled += [sent_at - timedelta(seconds=40), sent_at + timedelta(seconds=1)]
    metrics.sent(scheduled, sent_at, 0.004)

    # slots sent, publish duration (sum and bucket), lateness sum and its three buckets
    assert len(writes) == 7
    lateness = merged(multiprocess, "drumline_beat_send_lateness_seconds")
    assert lateness[("_count", "")] == 102
    assert lateness[("_bucket", "0.005")] == 1
    assert lateness[("_bucket", "2.5")] == 101
    assert lateness[("_bucket", "30.0")] == 101
    assert lateness[("_bucket", "60.0")] == 102
    assert lateness[("_sum", "")] == pytest.approx(100 * 1.2 + 4.95 + 40)
    assert len(LATENESS_BUCKETS) + 1 == sum(1 for s, _ in lateness if s == "_bucket")
