#!/usr/bin/env python3
"""Draws a line plot as SVG on standard output from lines on standard input:

    SERVER SCHEME X Y

one series per (SERVER, SCHEME), the X values (idle connections) evenly
spaced in the order first seen, Y (requests/s) from zero. The title is the
first argument. Only the standard library: the bench needs no plotting
package.
"""
import sys
from html import escape

title = sys.argv[1] if len(sys.argv) > 1 else ""
series, xs = {}, []
for line in sys.stdin:
    parts = line.split()
    if len(parts) != 4:
        sys.exit(f"plot.py: bad line {line!r}")
    server, scheme, x, y = parts
    if x not in xs:
        xs.append(x)
    series.setdefault(f"{server} {scheme}", {})[x] = float(y)
if not series:
    sys.exit("plot.py: no data")

W, H, L, R, T, B = 720, 420, 80, 200, 50, 60
top = max(y for s in series.values() for y in s.values()) * 1.1 or 1
px = lambda i: L + (W - L - R) * (i / max(1, len(xs) - 1))
py = lambda y: H - B - (H - T - B) * (y / top)
colours = {"Morgana HTTP": "#1b6ac9", "Morgana HTTPS": "#1b6ac9", "nginx HTTP": "#2a9d3a", "nginx HTTPS": "#2a9d3a"}

out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="14">{escape(title)}</text>']
for k in range(6):
    y = top * k / 5
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
for i, x in enumerate(xs):
    out.append(f'<text x="{px(i):.1f}" y="{H - B + 18}" text-anchor="middle">{int(x):,}</text>')
out.append(f'<line x1="{L}" x2="{W - R}" y1="{H - B}" y2="{H - B}" stroke="black"/>')
out.append(f'<line x1="{L}" x2="{L}" y1="{T}" y2="{H - B}" stroke="black"/>')
out.append(f'<text x="{(L + W - R) / 2}" y="{H - 16}" text-anchor="middle">idle keep-alive connections</text>')
out.append(f'<text x="18" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 {(T + H - B) / 2})">requests/s</text>')
for n, (name, points) in enumerate(sorted(series.items())):
    colour = colours.get(name, "#888")
    dash = ' stroke-dasharray="6 4"' if name.endswith("HTTPS") else ""
    coords = " ".join(f"{px(i):.1f},{py(points[x]):.1f}" for i, x in enumerate(xs) if x in points)
    out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    for i, x in enumerate(xs):
        if x in points:
            out.append(f'<circle cx="{px(i):.1f}" cy="{py(points[x]):.1f}" r="3" fill="{colour}"/>')
    ly = T + 20 + 22 * n
    out.append(f'<line x1="{W - R + 16}" x2="{W - R + 46}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
    out.append(f'<text x="{W - R + 52}" y="{ly + 4}">{escape(name)}</text>')
out.append("</svg>")
print("\n".join(out))
