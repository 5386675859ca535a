"""Inline SVG plots of the last hours, drawn on the server: the dashboard needs no chart
library, no build step and no network."""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from dicom_node.service.stats import Bucket

__all__ = ["throughput_svg", "time_to_result_svg"]

WIDTH, HEIGHT, PAD = 640, 160, 30


def _frame(title: str, peak: float, unit: str, buckets: Sequence[Bucket]) -> list[str]:
    first = buckets[0].start.strftime("%H:%M") if buckets else ""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" class="plot">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 5}" y2="{HEIGHT - PAD}" class="axis"/>',
        f'<line x1="{PAD}" y1="5" x2="{PAD}" y2="{HEIGHT - PAD}" class="axis"/>',
        f'<text x="{PAD - 3}" y="14" text-anchor="end" class="tick">{peak:g}</text>',
        f'<text x="{PAD + 3}" y="14" class="tick">{escape(unit)}</text>',
        f'<text x="{PAD}" y="{HEIGHT - 10}" class="tick">{first} UTC</text>',
        f'<text x="{WIDTH - 5}" y="{HEIGHT - 10}" text-anchor="end" class="tick">now</text>',
    ]


def throughput_svg(buckets: Sequence[Bucket]) -> str:
    """Bars per bucket: results (succeeded jobs) and dead letters stacked on them."""
    peak = max([b.succeeded + b.dead for b in buckets] + [1])
    parts = _frame("Jobs finished per interval", peak, "jobs", buckets)
    step = (WIDTH - PAD - 10) / max(len(buckets), 1)
    scale = (HEIGHT - PAD - 20) / peak
    for i, b in enumerate(buckets):
        x = PAD + 2 + i * step
        ok_h, dead_h = b.succeeded * scale, b.dead * scale
        base = HEIGHT - PAD
        if ok_h:
            parts.append(f'<rect x="{x:.1f}" y="{base - ok_h:.1f}" width="{step * 0.8:.1f}" height="{ok_h:.1f}" class="ok"><title>{b.succeeded} succeeded</title></rect>')
        if dead_h:
            parts.append(f'<rect x="{x:.1f}" y="{base - ok_h - dead_h:.1f}" width="{step * 0.8:.1f}" height="{dead_h:.1f}" class="dead"><title>{b.dead} dead</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def time_to_result_svg(buckets: Sequence[Bucket]) -> str:
    """Median time to result per bucket as a line, the slowest as dots; gaps where no result."""
    peak = max([b.max_s or 0.0 for b in buckets] + [1.0])
    parts = _frame("Time to result (median line, slowest dots)", round(peak, 1), "seconds", buckets)
    step = (WIDTH - PAD - 10) / max(len(buckets), 1)
    scale = (HEIGHT - PAD - 20) / peak
    points = []
    for i, b in enumerate(buckets):
        x = PAD + 2 + (i + 0.4) * step
        if b.median_s is not None and b.max_s is not None:
            points.append(f"{x:.1f},{HEIGHT - PAD - b.median_s * scale:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{HEIGHT - PAD - b.max_s * scale:.1f}" r="2.5" class="dead"><title>slowest {b.max_s:.1f} s</title></circle>')
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" class="line"/>')
    parts.append("</svg>")
    return "".join(parts)
