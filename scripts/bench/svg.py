#!/usr/bin/env python3
"""Line charts as plain SVG, for docs/benchmarks.md (scripts/bench.sh writes
them). Standard library only: no plotting package to install.

  svg.py SPEC.json OUT.svg

SPEC: {"title", "x", "y", "log_y": false, "x_categories": null (or labels,
       the points' x being their indices),
       "series": [{"name", "points": [[x, y], ...]}, ...]}
"""

import json
import math
import sys

W, H = 720, 360
L, R, T, B = 70, 170, 40, 50
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=10 * mag)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    return f"{v:g}"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(spec):
    series = [s for s in spec["series"] if s["points"]]
    xs = [p[0] for s in series for p in s["points"]]
    ys = [p[1] for s in series for p in s["points"]]
    log_y = spec.get("log_y", False)
    if log_y:
        ys = [y for y in ys if y > 0]
        lo, hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        hi = max(hi, lo + 1)
        yticks = [10**e for e in range(lo, hi + 1)]
        ymap = lambda y: T + (H - T - B) * (1 - (math.log10(max(y, 10**lo)) - lo) / (hi - lo))  # noqa: E731
    else:
        yticks = nice_ticks(0, max(ys) * 1.05)
        top = yticks[-1]
        ymap = lambda y: T + (H - T - B) * (1 - y / top)  # noqa: E731
    cats = spec.get("x_categories")
    xticks = list(range(len(cats))) if cats else nice_ticks(min(xs), max(xs))
    x0, x1 = xticks[0], xticks[-1]
    xmap = lambda x: L + (W - L - R) * (x - x0) / ((x1 - x0) or 1)  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2 - R / 2}" y="22" text-anchor="middle" font-size="15">{esc(spec["title"])}</text>',
    ]
    for t in yticks:
        y = ymap(t)
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    for t in xticks:
        x = xmap(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{H - B + 16}" text-anchor="middle">{esc(cats[t]) if cats else fmt(t)}</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">{esc(spec["x"])}</text>')
    out.append(f'<text transform="translate(16 {(T + H - B) / 2}) rotate(-90)" text-anchor="middle">{esc(spec["y"])}</text>')
    for i, s in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{xmap(x):.1f},{ymap(y):.1f}" for x, y in s["points"] if not log_y or y > 0)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        if len(s["points"]) <= 12:
            for x, y in s["points"]:
                out.append(f'<circle cx="{xmap(x):.1f}" cy="{ymap(y):.1f}" r="3" fill="{c}"/>')
        ly = T + 14 + 20 * i
        out.append(f'<line x1="{W - R + 12}" x2="{W - R + 32}" y1="{ly - 4}" y2="{ly - 4}" stroke="{c}" stroke-width="3"/>')
        out.append(f'<text x="{W - R + 38}" y="{ly}">{esc(s["name"])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    with open(sys.argv[2], "w") as f:
        f.write(render(spec))
