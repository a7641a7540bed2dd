"""Alerts over time by severity, as a server-rendered SVG (no chart library, no script).

Stacked bars, one per time bucket, one segment per severity; colours come from the console's
stylesheet through classes (``sev-1`` … ``sev-5``), because the Content-Security-Policy allows
no inline styles. Every number in the SVG is computed here; nothing from an alert is written
into it except through the escaping layer (the axis labels are times the console formats).
"""

from __future__ import annotations

import time

from detector.alerts import Severity
from gadgetwatch.console.html import Markup, join, render

WIDTH = 960
HEIGHT = 160
#: Room for the axis labels under the bars.
AXIS = 18


def fmt_time(ns: int, *, seconds: bool = True) -> str:
    """UTC, as the pages show every time (the nodes' clocks are UTC too)."""
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return time.strftime(pattern, time.gmtime(ns // 1_000_000_000)) + " UTC"


def histogram_svg(start_ns: int, width_ns: int, cells: list[tuple[int, int, int]]) -> Markup:
    if not cells:
        return Markup('<p class="muted">No alerts to chart.</p>')
    buckets = max(b for b, _, _ in cells) + 1
    totals = [0] * buckets
    for b, _, n in cells:
        totals[b] += n
    peak = max(totals) or 1
    bar_w = WIDTH / max(buckets, 1)
    plot_h = HEIGHT - AXIS
    parts: list[Markup] = []
    stacked = [0] * buckets
    # Highest severity at the bottom of each bar, where the eye lands first.
    for b, sev, n in sorted(cells, key=lambda c: (c[0], -c[1])):
        h = plot_h * n / peak
        y = plot_h - plot_h * stacked[b] / peak - h
        stacked[b] += n
        label = Severity(sev).label if 1 <= sev <= 5 else str(sev)
        parts.append(
            render(
                '<rect class="sev-{s}" x="{x}" y="{y}" width="{w}" height="{h}">'
                "<title>{t}: {n} {label}</title></rect>",
                s=sev,
                x=f"{b * bar_w:.1f}",
                y=f"{y:.1f}",
                w=f"{max(bar_w - 1, 1):.1f}",
                h=f"{h:.1f}",
                t=fmt_time(start_ns + b * width_ns, seconds=False),
                n=n,
                label=label,
            )
        )
    end_ns = start_ns + buckets * width_ns
    axis = render(
        '<text class="axis" x="0" y="{y}">{a}</text>'
        '<text class="axis" x="{w}" y="{y}" text-anchor="end">{b}</text>'
        '<text class="axis" x="{w}" y="10" text-anchor="end">peak {p}</text>',
        y=HEIGHT - 4,
        w=WIDTH,
        a=fmt_time(start_ns),
        b=fmt_time(end_ns),
        p=peak,
    )
    return render(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" '
        'aria-label="alerts over time by severity">{body}{axis}</svg>',
        w=WIDTH,
        h=HEIGHT,
        body=join(parts),
        axis=axis,
    )
