"""Hypothesis strategies for valid drawings: sheets and primitives on the 0.1 grid, inside the sheet."""

from __future__ import annotations

from hypothesis import strategies as st

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet


def tenths(low: int, high: int) -> st.SearchStrategy[float]:
    """Values low/10 .. high/10 on the 0.1 grid."""
    return st.integers(low, high).map(lambda n: round(n / 10, 1))


sheets = st.builds(Sheet, tenths(500, 5000), tenths(500, 5000))


@st.composite
def primitive_on(draw, sheet: Sheet, types: tuple[str, ...] = ("line", "rectangle", "circle", "arc", "polyline")):
    """One valid primitive of one of `types` lying on `sheet`."""
    w, h = int(round(sheet.width * 10)), int(round(sheet.height * 10))
    x, y = tenths(0, w), tenths(0, h)
    kind = draw(st.sampled_from(types))
    if kind == "line":
        start = (draw(x), draw(y))
        end = draw(st.tuples(x, y).filter(lambda p: p != start))
        return Line(*start, *end)
    if kind == "rectangle":
        x0 = draw(st.integers(0, w - 1))
        y0 = draw(st.integers(0, h - 1))
        return Rectangle(x0 / 10, y0 / 10, draw(st.integers(1, w - x0)) / 10, draw(st.integers(1, h - y0)) / 10)
    if kind == "circle":
        return Circle(draw(x), draw(y), draw(tenths(1, 2500)))
    if kind == "arc":
        start = draw(tenths(0, 3599))
        end = draw(tenths(0, 3599).filter(lambda a: a != start))
        return Arc(draw(x), draw(y), draw(tenths(1, 2500)), start, end)
    closed = draw(st.booleans())
    points = draw(st.lists(st.tuples(x, y), min_size=3 if closed else 2, max_size=8))
    return Polyline(points=points, closed=closed)


@st.composite
def drawings(draw, max_primitives: int = 12):
    """(sheet, [primitives]) with 0..max_primitives valid primitives."""
    sheet = draw(sheets)
    primitives = draw(st.lists(primitive_on(sheet), max_size=max_primitives))
    return sheet, primitives
