"""Writes an archive of part-like DXF files with ezdxf, as a CAD user's archive would hold them.

    python3 scripts/make_part_archive.py /tmp/parts --count 200 --seed 1

Plates with hole patterns, rounded plates (fillets as polyline bulges), flanges with bolt circles,
L-shaped brackets, slotted plates and stepped shafts; holes carry centre lines on the CENTER linetype;
about half the files carry DIMENSION entities (outline sizes, a hole's diameter), the rest none. This
is not the generator's layout (no scattered primitives, no grid placement; parts touch and nest), and
nothing here shares code with cad2program.synth: it is the stand-in for a user's own archive when
showing that `import-dxf` + fine-tuning helps (docs/own-drawings.md).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


def _size(rng, low, high) -> float:
    return float(round(rng.uniform(low, high) * 2) / 2)


def _centre_cross(msp, x, y, r):
    reach = r * 1.35
    msp.add_line((x - reach, y), (x + reach, y), dxfattribs={"linetype": "CENTER"})
    msp.add_line((x, y - reach), (x, y + reach), dxfattribs={"linetype": "CENTER"})


def _hole(msp, x, y, r, centre_lines):
    msp.add_circle((x, y), r)
    if centre_lines:
        _centre_cross(msp, x, y, r)


def plate(msp, rng, dims):
    w, h = _size(rng, 40, 220), 0.0
    h = _size(rng, max(25, w * 0.35), w * 0.9)
    if rng.random() < 0.5:
        msp.add_lwpolyline([(0, 0), (w, 0), (w, h), (0, h)], close=True)
    else:  # four separate lines, as many CAD users draw an outline
        for a, b in [((0, 0), (w, 0)), ((w, 0), (w, h)), ((w, h), (0, h)), ((0, h), (0, 0))]:
            msp.add_line(a, b)
    r = _size(rng, 0.04 * min(w, h), 0.12 * min(w, h))
    inset = max(2.2 * r, 0.15 * min(w, h))
    pattern = rng.choice(["corners", "row", "one"])
    if pattern == "corners":
        holes = [(inset, inset), (w - inset, inset), (w - inset, h - inset), (inset, h - inset)]
    elif pattern == "row":
        count = int(rng.integers(2, 5))
        holes = [(inset + k * (w - 2 * inset) / (count - 1), h / 2) for k in range(count)]
    else:
        holes = [(w / 2, h / 2)]
        r = _size(rng, 0.1 * min(w, h), 0.3 * min(w, h))
    centre_lines = rng.random() < 0.6
    for x, y in holes:
        _hole(msp, round(x, 1), round(y, 1), r, centre_lines)
    if dims:
        msp.add_linear_dim(base=(0, -0.12 * h - 8), p1=(0, 0), p2=(w, 0)).render()
        msp.add_linear_dim(base=(-0.12 * w - 8, 0), p1=(0, 0), p2=(0, h), angle=90).render()
        x, y = holes[0]
        msp.add_diameter_dim(center=(round(x, 1), round(y, 1)), radius=r, angle=45).render()


def rounded_plate(msp, rng, dims):
    w = _size(rng, 50, 220)
    h = _size(rng, max(30, w * 0.35), w * 0.9)
    f = _size(rng, 0.08 * min(w, h), 0.25 * min(w, h))
    bulge = math.tan(math.radians(90) / 4)  # a quarter circle
    pts = [(f, 0, 0), (w - f, 0, bulge), (w, f, 0), (w, h - f, bulge), (w - f, h, 0), (f, h, bulge),
           (0, h - f, 0), (0, f, bulge)]
    msp.add_lwpolyline(pts, format="xyb", close=True)
    r = _size(rng, 0.3 * f, 0.6 * f)
    for x, y in [(f, f), (w - f, f), (w - f, h - f), (f, h - f)]:
        _hole(msp, x, y, r, rng.random() < 0.5)
    if rng.random() < 0.5:
        _hole(msp, w / 2, h / 2, _size(rng, 0.1 * min(w, h), 0.25 * min(w, h)), True)
    if dims:
        msp.add_linear_dim(base=(0, -0.15 * h - 8), p1=(0, 0), p2=(w, 0)).render()
        msp.add_radius_dim(center=(f, f), radius=f, angle=225).render()


def flange(msp, rng, dims):
    outer = _size(rng, 30, 130)
    bore = _size(rng, 0.2 * outer, 0.45 * outer)
    pitch = (outer + bore) / 2
    count = int(rng.choice([3, 4, 6, 8]))
    hole = _size(rng, 0.05 * outer, min(0.12 * outer, 0.45 * (outer - bore) / 2))
    msp.add_circle((0, 0), outer)
    msp.add_circle((0, 0), bore)
    msp.add_circle((0, 0), pitch, dxfattribs={"linetype": "CENTER"})
    start = rng.choice([0.0, 45.0, 90.0 / count])
    for k in range(count):
        a = math.radians(start + 360.0 * k / count)
        msp.add_circle((round(pitch * math.cos(a), 1), round(pitch * math.sin(a), 1)), hole)
    msp.add_line((-outer * 1.1, 0), (outer * 1.1, 0), dxfattribs={"linetype": "CENTER"})
    msp.add_line((0, -outer * 1.1), (0, outer * 1.1), dxfattribs={"linetype": "CENTER"})
    if dims:
        msp.add_diameter_dim(center=(0, 0), radius=outer, angle=30).render()
        msp.add_diameter_dim(center=(0, 0), radius=bore, angle=120).render()


def bracket(msp, rng, dims):
    w, h = _size(rng, 50, 200), _size(rng, 50, 200)
    t1, t2 = _size(rng, 0.15 * h, 0.4 * h), _size(rng, 0.15 * w, 0.4 * w)
    msp.add_lwpolyline([(0, 0), (w, 0), (w, t1), (t2, t1), (t2, h), (0, h)], close=True)
    r = _size(rng, 0.2 * min(t1, t2), 0.35 * min(t1, t2))
    _hole(msp, (t2 + w) / 2, t1 / 2, r, rng.random() < 0.5)
    _hole(msp, t2 / 2, (t1 + h) / 2, r, rng.random() < 0.5)
    if rng.random() < 0.5:  # a fillet in the inner corner, drawn as an arc
        f = _size(rng, 0.1 * min(w - t2, h - t1), 0.25 * min(w - t2, h - t1))
        msp.add_arc((t2 + f, t1 + f), f, 180, 270)
    if dims:
        msp.add_linear_dim(base=(0, -0.15 * h - 8), p1=(0, 0), p2=(w, 0)).render()
        msp.add_linear_dim(base=(-0.15 * w - 8, 0), p1=(0, 0), p2=(0, h), angle=90).render()


def slotted(msp, rng, dims):
    w = _size(rng, 60, 220)
    h = _size(rng, max(30, 0.3 * w), 0.7 * w)
    msp.add_lwpolyline([(0, 0), (w, 0), (w, h), (0, h)], close=True)
    half = _size(rng, 0.08 * h, 0.2 * h)
    length = _size(rng, 0.25 * w, 0.55 * w)
    x0, y = (w - length) / 2, h / 2
    slot = [(x0, y - half, 0), (x0 + length, y - half, 1.0), (x0 + length, y + half, 0), (x0, y + half, 1.0)]
    msp.add_lwpolyline(slot, format="xyb", close=True)  # two lines and two half circles
    msp.add_line((x0 - half * 1.6, y), (x0 + length + half * 1.6, y), dxfattribs={"linetype": "CENTER"})
    if rng.random() < 0.6:
        r = _size(rng, 0.04 * h, 0.1 * h)
        for x in (0.1 * w + r, 0.9 * w - r):
            _hole(msp, round(x, 1), round(0.2 * h, 1), r, False)
    if dims:
        msp.add_linear_dim(base=(0, h + 0.15 * h + 8), p1=(0, h), p2=(w, h)).render()
        msp.add_radius_dim(center=(x0 + length, y), radius=half, angle=30).render()


def shaft(msp, rng, dims):
    steps = int(rng.integers(2, 5))
    lengths = [_size(rng, 15, 70) for _ in range(steps)]
    radii = sorted((_size(rng, 6, 40) for _ in range(steps)), reverse=bool(rng.random() < 0.5))
    x, top = 0.0, []
    for length, r in zip(lengths, radii):
        top += [(x, r), (x + length, r)]
        x += length
    lower = [(px, -py) for px, py in reversed(top)]
    msp.add_lwpolyline(top + lower, close=True)  # one closed stepped outline
    msp.add_line((-8, 0), (x + 8, 0), dxfattribs={"linetype": "CENTER"})
    if dims:
        msp.add_linear_dim(base=(0, -max(radii) - 12), p1=(0, -radii[0]), p2=(x, -radii[-1])).render()


PARTS = {"plate": plate, "rounded_plate": rounded_plate, "flange": flange, "bracket": bracket, "slotted": slotted,
         "shaft": shaft}


def write_part(path: Path, rng: np.random.Generator) -> str:
    import ezdxf

    doc = ezdxf.new("R2010", setup=True)
    doc.units = ezdxf.units.MM
    kind = str(rng.choice(list(PARTS)))
    PARTS[kind](doc.modelspace(), rng, dims=bool(rng.random() < 0.5))
    doc.saveas(path)
    return kind


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the DXF files")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    kinds = {}
    for k in range(args.count):
        kind = write_part(args.out / f"part{k:04d}.dxf", rng)
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"{args.count} DXF files in {args.out}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
