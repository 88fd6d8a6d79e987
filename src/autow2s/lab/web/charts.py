"""The PGR-over-time chart as inline SVG, drawn on the server: no chart library, nothing to fetch.

Why SVG text rather than a canvas: the page works without JavaScript, loads in one request,
and a test can count the points it drew.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape
from typing import Any

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


TRANSFER_W, TRANSFER_H = 960, 460
T_LEFT, T_RIGHT, T_TOP, T_BOTTOM = 56, 190, 16, 44
VANILLA_COLOR = "#b3261e"
TASK_PALETTE = tuple(c for c in PALETTE if c != "#d62728")  # red is vanilla's on the transfer charts


def _marker(shape: int, cx: float, cy: float, r: float, title: str = "") -> str:
    """One of four marker shapes (a transfer task's), centred on (cx, cy), with an escaped tooltip."""
    tip = f"<title>{escape(title)}</title>" if title else ""
    kind = shape % 4
    if kind == 0:
        return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}">{tip}</circle>'
    if kind == 1:
        return f'<rect x="{cx - r:.1f}" y="{cy - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}">{tip}</rect>'
    if kind == 2:
        return (f'<path d="M{cx:.1f},{cy - r * 1.2:.1f}L{cx + r * 1.1:.1f},{cy + r * 0.8:.1f}'
                f'L{cx - r * 1.1:.1f},{cy + r * 0.8:.1f}z">{tip}</path>')
    return (f'<path d="M{cx - r:.1f},{cy - r:.1f}L{cx + r:.1f},{cy + r:.1f}M{cx - r:.1f},{cy + r:.1f}'
            f'L{cx + r:.1f},{cy - r:.1f}" stroke-width="2">{tip}</path>')


def transfer_chart(rows: Sequence[dict[str, Any]], transfer_tasks: Sequence[str], vanilla: dict[str, Any] | None) -> str:
    """Research PGR (x, mean over the research tasks, with its CI) against transfer PGR (y) for every verified
    snapshot: one marker per transfer task (shape and colour per task, with its CI) and a diamond for the mean
    over transfer tasks. Vanilla's research and mean transfer PGR are dashed reference lines, so a method right
    of and above both beats vanilla on research and on transfer; the diagonal is "transfers as well as it
    researches". `rows` and `vanilla` are lab/transfer.py's transfer_table rows.
    """
    task_index = {task: i for i, task in enumerate(transfer_tasks)}
    shown = [r for r in rows if r.get("research_pgr") is not None]
    points: list[tuple[dict[str, Any], str, float, list[float] | None]] = []
    for row in shown:
        for task in transfer_tasks:
            run = row["transfer"].get(task)
            if run and run["status"] == "done" and run["pgr"] is not None:
                points.append((row, task, run["pgr"], run["ci"]))
    means = [r for r in shown if r.get("transfer_pgr") is not None]
    xs = [r["research_pgr"] for r in shown]
    ys = [p[2] for p in points] + [r["transfer_pgr"] for r in means]
    for row in shown:
        xs += list(row.get("research_ci") or [])
    for _, _, _, ci in points:
        ys += list(ci or [])

    def bounds(values: list[float]) -> tuple[float, float]:
        lo = max(Y_FLOOR, min(values + [-0.1]))
        hi = min(Y_CEIL, max(values + [0.6]))
        return lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo)

    x_lo, x_hi = bounds(xs)
    y_lo, y_hi = bounds(ys)
    plot_w, plot_h = TRANSFER_W - T_LEFT - T_RIGHT, TRANSFER_H - T_TOP - T_BOTTOM

    def x(value: float) -> float:
        return T_LEFT + (min(x_hi, max(x_lo, value)) - x_lo) / (x_hi - x_lo) * plot_w

    def y(value: float) -> float:
        return T_TOP + (y_hi - min(y_hi, max(y_lo, value))) / (y_hi - y_lo) * plot_h

    parts = [f'<svg class="chart transfer" viewBox="0 0 {TRANSFER_W} {TRANSFER_H}" role="img" '
             f'aria-label="research PGR against transfer PGR" data-points="{len(points)}" data-means="{len(means)}" '
             f'data-tasks="{escape(" ".join(transfer_tasks))}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect class="plot" x="{T_LEFT}" y="{T_TOP}" width="{plot_w}" height="{plot_h}"/>']
    for tick in _ticks(y_lo, y_hi):
        parts.append(f'<line class="grid" x1="{T_LEFT}" x2="{T_LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="tick" x="{T_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in _ticks(x_lo, x_hi):
        parts.append(f'<line class="grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{T_TOP}" y2="{T_TOP + plot_h}"/>'
                     f'<text class="tick" x="{x(tick):.1f}" y="{T_TOP + plot_h + 16}" text-anchor="middle">'
                     f'{tick:g}</text>')
    parts.append(f'<text class="axis" x="{T_LEFT + plot_w / 2}" y="{TRANSFER_H - 6}" text-anchor="middle">'
                 'research PGR (verified holdout, mean over the research tasks)</text>'
                 f'<text class="axis" transform="translate(14 {T_TOP + plot_h / 2}) rotate(-90)" '
                 'text-anchor="middle">transfer PGR (held-out tasks)</text>')
    # the diagonal: as good on the transfer tasks as on the research tasks
    d_lo, d_hi = max(x_lo, y_lo), min(x_hi, y_hi)
    if d_lo < d_hi:
        parts.append(f'<g class="ref diagonal"><line x1="{x(d_lo):.1f}" y1="{y(d_lo):.1f}" x2="{x(d_hi):.1f}" '
                     f'y2="{y(d_hi):.1f}"><title>transfer PGR = research PGR</title></line></g>')
    if vanilla is not None and vanilla.get("research_pgr") is not None:
        vx = x(vanilla["research_pgr"])
        parts.append(f'<g class="ref vanilla" data-ref="vanilla-research"><line x1="{vx:.1f}" x2="{vx:.1f}" '
                     f'y1="{T_TOP}" y2="{T_TOP + plot_h}"/><text x="{vx + 4:.1f}" y="{T_TOP + 12}">vanilla research '
                     f'{vanilla["research_pgr"]:.2f}</text></g>')
    if vanilla is not None and vanilla.get("transfer_pgr") is not None:
        vy = y(vanilla["transfer_pgr"])
        parts.append(f'<g class="ref vanilla" data-ref="vanilla-transfer"><line x1="{T_LEFT}" '
                     f'x2="{T_LEFT + plot_w}" y1="{vy:.1f}" y2="{vy:.1f}"/><text x="{T_LEFT + plot_w + 6}" '
                     f'y="{vy + 4:.1f}">vanilla transfer · {vanilla["transfer_pgr"]:.2f}</text></g>')
    winner = next((r for r in shown if not r["is_vanilla"]), None)
    for row, task, value, ci in points:
        color = TASK_PALETTE[task_index[task] % len(TASK_PALETTE)]
        cx, cy = x(row["research_pgr"]), y(value)
        label = f'{row["method"]} · {row["researcher"]} · {task} · transfer PGR {value:.3f}'
        ci_line = ""
        if ci:
            label += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
            ci_line = f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(ci[0]):.1f}" y2="{y(ci[1]):.1f}"/>'
        css = "tpt vanilla-pt" if row["is_vanilla"] else "tpt"
        parts.append(f'<g class="{css}" data-task="{escape(task)}" data-snapshot="{row["snapshot_id"]}" '
                     f'fill="{color}" stroke="{color}">{ci_line}{_marker(task_index[task], cx, cy, 3.6, label)}</g>')
    for row in means:
        cx, cy = x(row["research_pgr"]), y(row["transfer_pgr"])
        color = VANILLA_COLOR if row["is_vanilla"] else "#18202b"
        ci, t_ci = row.get("research_ci"), row.get("transfer_ci")
        bars = ""
        if ci:
            bars += f'<line class="ci" x1="{x(ci[0]):.1f}" x2="{x(ci[1]):.1f}" y1="{cy:.1f}" y2="{cy:.1f}"/>'
        if t_ci:
            bars += f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(t_ci[0]):.1f}" y2="{y(t_ci[1]):.1f}"/>'
        title = escape(f'{row["method"]} · {row["researcher"]} · research PGR {row["research_pgr"]:.3f}'
                       f' · mean transfer PGR {row["transfer_pgr"]:.3f}')
        css = "tmean vanilla-mean" if row["is_vanilla"] else ("tmean winner" if row is winner else "tmean")
        text = ""
        if row["is_vanilla"] or row is winner:
            name = "vanilla" if row["is_vanilla"] else escape(row["method"][:28])
            text = f'<text x="{cx + 9:.1f}" y="{cy - 7:.1f}">{name}</text>'
        parts.append(f'<g class="{css}" data-snapshot="{row["snapshot_id"]}" stroke="{color}">{bars}'
                     f'<path d="M{cx:.1f},{cy - 7:.1f}l7,7l-7,7l-7,-7z"><title>{title}</title></path>{text}</g>')
    legend_x, legend_y = T_LEFT + plot_w + 12, T_TOP + plot_h - 18 * len(task_index) - 6  # bottom right
    parts.append('<g class="key">')
    for task, i in task_index.items():
        color, ly = TASK_PALETTE[i % len(TASK_PALETTE)], legend_y + 18 * i
        parts.append(f'<g fill="{color}" stroke="{color}">{_marker(i, legend_x + 5, ly, 3.6)}</g>'
                     f'<text x="{legend_x + 15}" y="{ly + 4}">{escape(task[:24])}</text>')
    ly = legend_y + 18 * len(task_index)
    parts.append(f'<path class="tmean-key" d="M{legend_x + 5},{ly - 6}l6,6l-6,6l-6,-6z"/>'
                 f'<text x="{legend_x + 15}" y="{ly + 4}">mean over the tasks</text></g>')
    parts.append("</svg>")
    return "".join(parts)
