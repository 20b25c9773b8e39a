"""A log-log scatter plot written as plain SVG: labelled points and a frontier line, no dependencies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 960, 640
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 50, 60
FONT = 11
CHAR_W = 6.1  # rough width of a character at FONT px (sans-serif)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    #: ``baseline``, ``hint``, ``vtrans``, ``before`` (a wait that learned nothing), ``unlearned`` or
    #: ``sweep`` (sweep points are not labelled).
    kind: str
    frontier: bool = False


STYLE = {
    "baseline": ("#1f77b4", 4.5),
    "hint": ("#17becf", 4.5),
    "vtrans": ("#d62728", 6.5),
    "before": ("#ff7f0e", 5.5),
    "unlearned": ("#2ca02c", 5.0),
    "sweep": ("#b0b0b0", 2.5),
}


def _ticks(lo: float, hi: float) -> list[float]:
    out = []
    for exp in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**exp
            if lo <= v <= hi:
                out.append(v)
    return out


def _fmt(v: float) -> str:
    return f"{v:g}" if v >= 0.01 else f"{v:.0e}"


def scatter(points: list[Point], title: str, xlabel: str, ylabel: str) -> str:
    """The SVG text of a log-log scatter of ``points`` (all coordinates > 0)."""
    xs = [p.x for p in points]
    ys = [p.y for p in points]
    x0, x1 = min(xs) / 1.3, max(xs) * 1.3
    y0, y1 = min(ys) / 1.5, max(ys) * 1.5
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0)) * pw

    def sy(y: float) -> float:
        return TOP + ph - (math.log(y) - math.log(y0)) / (math.log(y1) - math.log(y0)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="{FONT}">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for v in _ticks(x0, x1):
        x = sx(v)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{_fmt(v)}</text>')
    for v in _ticks(y0, y1):
        y = sy(v)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(
        f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 18}" text-anchor="middle" font-size="13">'
        f"{escape(xlabel)}</text>"
    )
    out.append(
        f'<text x="18" y="{TOP + ph / 2}" text-anchor="middle" font-size="13" '
        f'transform="rotate(-90 18 {TOP + ph / 2})">{escape(ylabel)}</text>'
    )
    front = sorted((p for p in points if p.frontier), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in front)
        out.append(f'<polyline points="{path}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
    order = {"sweep": 0, "baseline": 1, "hint": 1, "unlearned": 2, "before": 3, "vtrans": 4}
    boxes: list[tuple[float, float, float, float]] = []
    for p in sorted(points, key=lambda p: order.get(p.kind, 1)):
        color, r = STYLE.get(p.kind, STYLE["baseline"])
        x, y = sx(p.x), sy(p.y)
        stroke = ' stroke="black" stroke-width="1.2"' if p.frontier and p.kind != "sweep" else ""
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"{stroke}/>')
        boxes.append((x - r, y - r, x + r, y + r))
    labelled = [p for p in points if p.kind != "sweep"]
    for p in sorted(labelled, key=lambda p: (-order.get(p.kind, 1), sy(p.y))):
        out.append(_label(p, sx(p.x), sy(p.y), boxes, (LEFT, TOP, LEFT + pw, TOP + ph)))
    legend = [
        ("baseline", "published poller"),
        ("hint", "poller reading hints"),
        ("vtrans", "vtrans default"),
        ("before", "vtrans on GET /status (nothing learned)"),
        ("unlearned", "vtrans default, no learning"),
        ("sweep", "vtrans sweep"),
    ]
    kinds = {p.kind for p in points}
    ly = TOP + 14
    for kind, text in legend:
        if kind not in kinds:
            continue
        color, r = STYLE[kind]
        out.append(f'<circle cx="{LEFT + pw - 150}" cy="{ly - 4}" r="{r}" fill="{color}"/>')
        out.append(f'<text x="{LEFT + pw - 140}" y="{ly}">{text}</text>')
        ly += 16
    out.append(
        f'<text x="{LEFT + pw - 150}" y="{ly + 2}" fill="#666">- - Pareto frontier (black ring)</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label(
    p: Point,
    x: float,
    y: float,
    boxes: list[tuple[float, float, float, float]],
    area: tuple[float, float, float, float],
) -> str:
    """Place the label near its point where it hits no other label or point (greedy)."""
    w, h = len(p.label) * CHAR_W, FONT + 2
    candidates = []
    for dy in (0, -12, 12, -24, 24, -36, 36, -48, 48):
        candidates.append((x + 8, y + dy, "start"))
        candidates.append((x - 8, y + dy, "end"))
    chosen = candidates[0]
    for cx, cy, anchor in candidates:
        left = cx if anchor == "start" else cx - w
        box = (left, cy - h + 3, left + w, cy + 3)
        inside = area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1] and box[3] <= area[3]
        if inside and not any(_overlaps(box, b) for b in boxes):
            chosen = (cx, cy, anchor)
            break
    cx, cy, anchor = chosen
    left = cx if anchor == "start" else cx - w
    boxes.append((left, cy - h + 3, left + w, cy + 3))
    line = ""
    if abs(cy - y) > 6:
        line = f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{cx:.1f}" y2="{cy - 4:.1f}" stroke="#aaa"/>'
    return f'{line}<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="{anchor}">{escape(p.label)}</text>'
