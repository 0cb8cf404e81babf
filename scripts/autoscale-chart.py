#!/usr/bin/env python3
"""Draw docs/autoscale-sawtooth.png from the autoscaler simulation's output.

    SHOAL_AUTOSCALE_SIM_OUT=/tmp/sim cargo test --lib autoscale::simulation
    scripts/autoscale-chart.py /tmp/sim/sawtooth.csv docs/autoscale-sawtooth.png

The CSV is `t,load,ready,target` per simulated second; the load is in percent
of one core and the policy's target is 50 % per instance, so load ÷ 50 is the
count the load needs. Blue: that need; red: instances in rotation; grey
grid every 2 instances and every 2 minutes. Standard library only (zlib,
struct): no plotting package needed.
"""

import csv
import struct
import sys
import zlib

W, H = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 10, 30
TARGET = 50.0

# 3×5 digits for the axes.
DIGITS = {
    "0": ["111", "101", "101", "101", "111"],
    "1": ["010", "110", "010", "010", "111"],
    "2": ["111", "001", "111", "100", "111"],
    "3": ["111", "001", "111", "001", "111"],
    "4": ["101", "101", "111", "001", "001"],
    "5": ["111", "100", "111", "001", "111"],
    "6": ["111", "100", "111", "101", "111"],
    "7": ["111", "001", "001", "001", "001"],
    "8": ["111", "101", "111", "101", "111"],
    "9": ["111", "101", "111", "001", "111"],
    "m": ["000", "000", "111", "111", "101"],
}


def main(src, dst):
    with open(src) as f:
        rows = [(int(r["t"]), float(r["load"]), int(r["ready"])) for r in csv.DictReader(f)]
    px = [[(255, 255, 255)] * W for _ in range(H)]

    def put(x, y, c):
        if 0 <= x < W and 0 <= y < H:
            px[y][x] = c

    t_max = rows[-1][0]
    y_max = max(max(r[1] / TARGET for r in rows), max(r[2] for r in rows)) + 1
    y_max = int(y_max + 1) // 2 * 2
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(t):
        return LEFT + int(t / t_max * (pw - 1))

    def sy(v):
        return TOP + ph - 1 - int(v / y_max * (ph - 1))

    def text(s, x, y, scale=2):
        for ch in s:
            glyph = DIGITS.get(ch)
            if glyph:
                for gy, line in enumerate(glyph):
                    for gx, bit in enumerate(line):
                        if bit == "1":
                            for dy in range(scale):
                                for dx in range(scale):
                                    put(x + gx * scale + dx, y + gy * scale + dy, (60, 60, 60))
            x += 4 * scale

    grey = (225, 225, 225)
    for v in range(0, y_max + 1, 2):
        for x in range(LEFT, W - RIGHT):
            put(x, sy(v), grey)
        text(str(v), 8, sy(v) - 5)
    for t in range(0, t_max + 1, 120):
        for y in range(TOP, TOP + ph):
            put(sx(t), y, grey)
        text(f"{t // 60}m", sx(t) - 6, H - BOTTOM + 8)
    for x in range(LEFT, W - RIGHT):
        put(x, sy(0), (0, 0, 0))
    for y in range(TOP, TOP + ph):
        put(LEFT, y, (0, 0, 0))

    def line(points, color, width):
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for i in range(steps + 1):
                x = x0 + (x1 - x0) * i // steps
                y = y0 + (y1 - y0) * i // steps
                for d in range(width):
                    put(x, y + d, color)

    need = [(sx(t), sy(load / TARGET)) for t, load, _ in rows]
    line(need, (40, 90, 200), 1)
    steps = []
    for t, _, ready in rows:
        p = (sx(t), sy(ready))
        if steps and steps[-1][1] != p[1]:
            steps.append((p[0], steps[-1][1]))
        steps.append(p)
    line(steps, (210, 40, 40), 3)

    raw = b"".join(b"\x00" + bytes(c for p in row for c in p) for row in px)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9))
    png += chunk(b"IEND", b"")
    with open(dst, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
