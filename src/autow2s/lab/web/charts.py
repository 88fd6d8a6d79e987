"""The PGR-over-time chart as inline SVG, drawn on the server: no chart library, nothing to fetch.

Why SVG text rather than a canvas: the page works without JavaScript, loads in one request,
and a test can count the points it drew.
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import Sequence

from autow2s.lab.web.queries import Point

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22")
WIDTH, HEIGHT = 960, 420
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 16, 40
Y_FLOOR, Y_CEIL = -1.0, 2.0  # points beyond are drawn on the edge, marked as clipped


def colors(researcher_ids: Sequence[int]) -> dict[int, str]:
    return {rid: PALETTE[i % len(PALETTE)] for i, rid in enumerate(sorted(set(researcher_ids)))}


def _ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    raw = (hi - lo) / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def best_so_far(points: Sequence[Point]) -> list[tuple[float, float]]:
    """(time, best PGR up to then): one entry per improvement, in time order."""
    out: list[tuple[float, float]] = []
    for point in points:
        if not out or point.pgr > out[-1][1]:
            out.append((point.at, point.pgr))
    return out


def pgr_chart(points: Sequence[Point], verified: Sequence[Point], names: dict[int, str], palette: dict[int, str],
              *, vanilla_pgr: float | None = None, start: float | None = None) -> str:
    """Dev PGR of every evaluation (dots), each researcher's best so far (steps), verified holdout (diamonds),
    and reference lines for the weak model (0), the ceiling (1) and the vanilla baseline."""
    times = [p.at for p in points] + [p.at for p in verified]
    t0 = start if start is not None else (min(times) if times else time.time())
    t1 = max(times + [t0 + 60.0])
    values = [p.pgr for p in points] + [p.pgr for p in verified] + ([vanilla_pgr] if vanilla_pgr is not None else [])
    lo = max(Y_FLOOR, min(values + [-0.2]))
    hi = min(Y_CEIL, max(values + [1.2]))
    lo, hi = lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo)  # a margin, so no point sits on the frame
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: float) -> float:
        return LEFT + (at - t0) / (t1 - t0) * plot_w

    def y(value: float) -> float:
        return TOP + (hi - min(hi, max(lo, value))) / (hi - lo) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="PGR over time" '
             f'data-points="{len(points)}" data-verified="{len(verified)}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>']
    for tick in _ticks(lo, hi):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    span_min = (t1 - t0) / 60.0
    for tick in _ticks(0.0, span_min):
        px = x(t0 + tick * 60.0)
        parts.append(f'<text class="tick" x="{px:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<text class="axis" x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">'
                 'minutes since the first evaluation</text>'
                 f'<text class="axis" transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
                 'PGR</text>')
    references = [(0.0, "weak model · PGR 0", "ref weak"), (1.0, "ceiling · PGR 1", "ref ceiling")]
    if vanilla_pgr is not None:
        references.append((vanilla_pgr, f"vanilla · {vanilla_pgr:.2f}", "ref vanilla"))
    for value, label, css in references:
        parts.append(f'<g class="{css}"><line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" '
                     f'y2="{y(value):.1f}"/><text x="{LEFT + plot_w + 6}" y="{y(value) + 4:.1f}">{label}</text></g>')
    by_researcher: dict[int, list[Point]] = {}
    for point in points:
        by_researcher.setdefault(point.researcher_id, []).append(point)
    for rid, mine in sorted(by_researcher.items()):
        color, name = palette.get(rid, PALETTE[-1]), escape(names.get(rid, "?"))
        parts.append(f'<g class="series" data-researcher="{name}" fill="{color}" stroke="{color}">')
        steps = best_so_far(mine)
        path = [f"M{x(steps[0][0]):.1f},{y(steps[0][1]):.1f}"]
        for at, value in steps[1:]:
            path.append(f"H{x(at):.1f}V{y(value):.1f}")
        path.append(f"H{x(t1):.1f}")
        parts.append(f'<path class="best" fill="none" d="{"".join(path)}"><title>{name}: best so far '
                     f'{steps[-1][1]:.3f}</title></path>')
        for p in mine:
            clipped = " clipped" if not lo <= p.pgr <= hi else ""
            flagged = " flagged" if p.flagged else ""
            parts.append(f'<circle class="pt{clipped}{flagged}" cx="{x(p.at):.1f}" cy="{y(p.pgr):.1f}" r="2.6">'
                         f'<title>evaluation {p.ref} · {name} · dev PGR {p.pgr:.3f}</title></circle>')
        parts.append("</g>")
    for p in verified:
        color, name = palette.get(p.researcher_id, PALETTE[-1]), escape(names.get(p.researcher_id, "?"))
        cx, cy = x(p.at), y(p.pgr)
        parts.append(f'<path class="verified" stroke="{color}" d="M{cx:.1f},{cy - 6:.1f}l6,6l-6,6l-6,-6z">'
                     f'<title>verified run {p.ref} · {name} · holdout PGR {p.pgr:.3f}</title></path>')
    parts.append("</svg>")
    return "".join(parts)
