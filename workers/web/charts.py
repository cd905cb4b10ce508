"""Start lateness and duration over time, drawn here as SVG: no chart library, no script, and
nothing from a CDN. Only numbers and escaped labels reach the markup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 640, 150, 36
FAILED = {"failed", "superseded", "skipped"}


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float
    status: str


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (`fraction` 0.5 is the median); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))  # ceil without floats
    return ordered[min(rank, len(ordered)) - 1]


def line_chart(title: str, unit: str, points: Sequence[Point]) -> Markup:
    """An SVG chart of `points` over time: a line, a dot per run (failed ones marked), and the
    axes' extremes labelled."""
    label = escape(title)
    if not points:
        return Markup(
            f'<svg class="chart" viewBox="0 0 {WIDTH} 40" role="img" aria-label="{label}">'
            f'<text x="4" y="24">{label}: no runs yet</text></svg>'
        )
    start = points[0].at.timestamp()
    span = max(points[-1].at.timestamp() - start, 1e-9)
    top = max(max(point.value for point in points), 1e-9)
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def xy(point: Point) -> tuple[float, float]:
        x = PAD + (point.at.timestamp() - start) / span * plot_w if len(points) > 1 else WIDTH / 2
        y = HEIGHT - PAD - max(point.value, 0) / top * plot_h
        return round(x, 1), round(y, 1)

    coords = [xy(point) for point in points]
    line = " ".join(f"{x},{y}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="2.5" class="{"bad" if p.status in FAILED else "ok"}">'
        f"<title>{escape(p.at.isoformat())}: {p.value:.1f} {escape(unit)} "
        f"({escape(p.status)})</title></circle>"
        for (x, y), p in zip(coords, points, strict=True)
    )
    first, last = escape(_short(points[0].at)), escape(_short(points[-1].at))
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">'
        f'<text x="{PAD}" y="14">{label} ({escape(unit)}; max {top:.1f})</text>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'class="axis"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<text x="{PAD}" y="{HEIGHT - 8}">{first}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">{last}</text>'
        f'<polyline points="{line}" class="series"/>{dots}</svg>'
    )


def _short(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M:%SZ")
