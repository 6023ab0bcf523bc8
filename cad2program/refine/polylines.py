"""Measuring polylines on the ink by tracing their strokes: the stroke the model's polyline lies
along is thinned to its centre line (scikit-image's `skeletonize`), walked end to end (or round, when
it closes), simplified to corners (OpenCV's `approxPolyDP`), and each side fitted to its pixels; the
corners are where neighbouring sides cross. Lines whose ink bends become the polyline it shows."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from cad2program.contract.geometry import pair_error, tolerance
from cad2program.contract.program import Line, Polyline, Primitive, Sheet
from cad2program.refine.ink import Frame, Ink, along, as_ink, band_width, ink_at, near_ink, outline_px, strokes_mask
from cad2program.refine.segments import PARALLEL_SINE, fit_segment, ink_run_ends, intersection, search_sizes

NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))  # 4-neighbours first
MIN_SIDE = 1.0  # polyline sides shorter than the matching tolerance are corner artefacts, not drawn ones
STROKE_SHARE = 0.25  # share of the model's polyline a stroke must lie along to be traced as it
TRACE_COVERAGE = 0.97  # share of a stroke's skeleton one walk must cover: more is a branch (another stroke)
CUT_CORNER_SIDE = 3.0  # tolerances: a side this short may be a sharp corner the skeleton cut (`with_sharp_corners`)
SHARP_SINE = 0.05  # sides turning back on each other are trusted to cross down to about 3 degrees apart
SPUR_REACH = 2.0  # tolerances from a corner within which the skeleton's spurs are the corner's, not a branch


def _stroke_component(ink: np.ndarray, points: np.ndarray, closed: bool, reach: int) -> np.ndarray | None:
    """(H, W) bool: the connected stroke of ink that lies most along the polyline through `points`
    (within `reach` pixels of it); None when none covers most of that path."""
    near = np.zeros(ink.shape, np.uint8)
    cv2.polylines(near, [np.rint(points).astype(np.int32)], closed, 1, 2 * reach + 1)
    count, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    hits = np.bincount(labels[(near > 0) & ink], minlength=count)
    hits[0] = 0
    best = int(np.argmax(hits))
    if hits[best] == 0:
        return None
    stroke = labels == best
    on_path = np.zeros(ink.shape, np.uint8)
    cv2.polylines(on_path, [np.rint(points).astype(np.int32)], closed, 1, 1)
    along = cv2.dilate(stroke.astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8))
    return stroke if (along[on_path > 0] > 0).mean() >= STROKE_SHARE else None


def _neighbours(skeleton: np.ndarray, pixel: tuple[int, int]) -> list[tuple[int, int]]:
    """The skeleton's pixels around `pixel` (8-neighbourhood), 4-neighbours first."""
    out = []
    for dr, dc in NEIGHBOURS:
        q = (pixel[0] + dr, pixel[1] + dc)
        if 0 <= q[0] < skeleton.shape[0] and 0 <= q[1] < skeleton.shape[1] and skeleton[q]:
            out.append(q)
    return out


def _without_spurs(skeleton: np.ndarray, spur: int) -> np.ndarray:
    """The skeleton without the short branches (at most `spur` pixels, from an end to a fork) that a
    thick stroke's sharp corner leaves in it."""
    skeleton = skeleton.copy()
    # How many skeleton pixels each pixel touches, kept up to date as branches go: most pixels are no
    # end, and counting their neighbours one by one was most of tracing a polyline's time.
    touching = cv2.filter2D(skeleton.astype(np.uint8), -1, _TOUCHING, borderType=cv2.BORDER_CONSTANT).astype(np.int32)
    for end in map(tuple, np.argwhere(skeleton)):
        if touching[end] != 1:
            continue
        branch, at = [end], end
        while len(branch) <= spur:
            ahead = [q for q in _neighbours(skeleton, at) if q not in branch]
            if len(ahead) != 1 or len(_neighbours(skeleton, ahead[0])) > 2:
                break
            at = ahead[0]
            branch.append(at)
        forks = len(ahead) > 1 or (len(ahead) == 1 and len(_neighbours(skeleton, ahead[0])) > 2)
        if forks and len(branch) <= spur:
            gone = [(r, c) for r, c in branch if skeleton[r, c]]  # an end may be a pixel gone before
            skeleton[tuple(np.array(branch).T)] = False
            for r, c in gone:
                touching[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] -= 1
                touching[r, c] += 1  # a pixel is not its own neighbour
    return skeleton


_TOUCHING = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32)  # the 8-neighbourhood, for `cv2.filter2D`


def _skeleton_graph(skeleton: np.ndarray):
    """The skeleton's pixels (N, 2) as (row, col) and their 8-neighbourhood as a graph (a SciPy sparse
    matrix) whose edges weigh the step's length (1 or the square root of 2)."""
    from scipy.sparse import coo_matrix

    pixels = np.argwhere(skeleton)
    index = np.full(skeleton.shape, -1, np.int64)
    index[tuple(pixels.T)] = np.arange(len(pixels))
    padded = np.pad(index, 1, constant_values=-1)
    rows, cols, weights = [], [], []
    for dr, dc in NEIGHBOURS:
        other = padded[1 + dr:1 + dr + skeleton.shape[0], 1 + dc:1 + dc + skeleton.shape[1]][tuple(pixels.T)]
        keep = other >= 0
        rows.append(np.flatnonzero(keep))
        cols.append(other[keep])
        weights.append(np.full(int(keep.sum()), np.hypot(dr, dc)))
    rows, cols, weights = map(np.concatenate, (rows, cols, weights))
    return pixels, coo_matrix((weights, (rows, cols)), shape=(len(pixels),) * 2).tocsr()


def _shortest_path(graph, source: int, target: int) -> list[int] | None:
    """Nodes from source to target along the graph's shortest path; None when they are not connected."""
    from scipy.sparse.csgraph import dijkstra

    _, previous = dijkstra(graph, indices=source, return_predecessors=True)
    if target != source and previous[target] < 0:
        return None
    path = [target]
    while path[-1] != source:
        path.append(int(previous[path[-1]]))
    return path[::-1]


def _cycle_core(graph) -> np.ndarray:
    """(N,) bool: the nodes left when every end (a node of one neighbour or none) is pruned, again and
    again: the skeleton's loops without the spurs and strokes that hang off them."""
    degree = np.asarray((graph > 0).sum(axis=1)).ravel()
    alive = np.ones(len(degree), bool)
    ends = np.flatnonzero(degree <= 1)
    while len(ends):
        alive[ends] = False
        for node in ends:
            for other in graph.indices[graph.indptr[node]:graph.indptr[node + 1]]:
                degree[other] -= 1
        ends = np.flatnonzero(alive & (degree <= 1))
    return alive


def _walk_round(graph, core: np.ndarray) -> list[int] | None:
    """Nodes once round the loop in `core`, in order: from a node on a plain stretch of it (two
    neighbours, not next to each other), the shortest way from one neighbour to the other that does
    not pass through it. None when the core holds no loop."""
    nodes = np.flatnonzero(core)
    if len(nodes) < 8:
        return None
    inner = graph[core][:, core].tocsr()
    linked = inner > 0
    for start in range(len(nodes)):
        neighbours = inner.indices[inner.indptr[start]:inner.indptr[start + 1]]
        if len(neighbours) == 2 and not linked[neighbours[0], neighbours[1]]:
            break
    else:
        return None
    keep = np.ones(len(nodes), bool)
    keep[start] = False
    others = np.flatnonzero(keep)
    renumber = np.cumsum(keep) - 1
    way = _shortest_path(inner[keep][:, keep], int(renumber[neighbours[0]]), int(renumber[neighbours[1]]))
    return None if way is None else [int(nodes[start])] + [int(nodes[others[k]]) for k in way]


def _ordered_skeleton(skeleton: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """The skeleton's pixels (row, col) in order along the stroke and whether it closes: a closed one
    goes round its loop, an open one runs between its two ends. Shortest ways, so that the clumps of
    pixels a sharp corner leaves are crossed, not followed into. None when an open skeleton has more
    than two ends (it branches)."""
    pixels, graph = _skeleton_graph(skeleton)
    core = _cycle_core(graph)
    if core.sum() >= 8:  # a loop: closed, whatever spurs its sharp corners leave (judged by the caller)
        way = _walk_round(graph, core)
        return None if way is None else (pixels[way], True)
    ends = np.flatnonzero(np.asarray((graph > 0).sum(axis=1)).ravel() == 1)
    if len(ends) != 2:
        return None
    way = _shortest_path(graph, int(ends[0]), int(ends[1]))
    return None if way is None else (pixels[way], False)


def import_deferred() -> None:
    """Imports what measuring imports only when first needed (scikit-image and SciPy's graphs for
    tracing polylines): about half a second once. A server calls it
    while warming up, so that its first request does not pay it."""
    import scipy.sparse.csgraph  # noqa: F401
    import skimage.morphology  # noqa: F401


def _skeleton_path(stroke: np.ndarray, spur: int) -> tuple[np.ndarray, bool, np.ndarray, int] | None:
    """A stroke's centre line as ordered (col, row) points, whether it closes on itself, the
    skeleton's pixels (col, row) beside it (spurs and branches: the caller judges them) and the
    skeleton's size; None when the stroke cannot be walked (an open one that branches by more than
    `spur` pixels)."""
    from skimage.morphology import skeletonize  # imported here: only polylines need it (`import_deferred`)

    rows, cols = np.nonzero(stroke)
    r0, c0 = max(rows.min() - 1, 0), max(cols.min() - 1, 0)  # the stroke's box: less to walk over
    skeleton = _without_spurs(skeletonize(stroke[r0:rows.max() + 2, c0:cols.max() + 2]), spur)
    total = int(skeleton.sum())
    if total < 8:
        return None
    ordered = _ordered_skeleton(skeleton)
    if ordered is None:
        return None
    path, closed = ordered
    # Pixels beside the way (a diagonal step's corner, a corner's clump) count as covered; a branch does not.
    walked = np.zeros(skeleton.shape, np.uint8)
    walked[tuple(path.T)] = 1
    beside = skeleton & ~cv2.dilate(walked, np.ones((3, 3), np.uint8)).astype(bool)
    return (path.astype(np.float64)[:, ::-1] + [c0, r0], closed,
            np.argwhere(beside).astype(np.float64)[:, ::-1] + [c0, r0], total)


def _without_short_sides(corners: np.ndarray, closed: bool, shortest: float) -> np.ndarray:
    """Corners with every side shorter than `shortest` merged away: a rounded or blurred corner gives
    Douglas-Peucker two corners close together. The short side's two corners become their middle;
    at an open end, the end corner goes (a hook of the stroke's end, not a side)."""
    corners = list(corners)
    while len(corners) > (3 if closed else 2):
        sides = [(i, (i + 1) % len(corners)) for i in range(len(corners) if closed else len(corners) - 1)]
        length, (i, j) = min((float(np.hypot(*(corners[j] - corners[i]))), (i, j)) for i, j in sides)
        if length >= shortest:
            break
        if not closed and i == 0:
            del corners[0]
        elif not closed and j == len(corners) - 1:
            del corners[j]
        else:
            corners[i] = (corners[i] + corners[j]) / 2
            del corners[j]
    return np.array(corners)


def _straightened(corners: np.ndarray, closed: bool, epsilon: float) -> np.ndarray:
    """Corners without those that lie within `epsilon` of the line through their neighbours (on a
    closed outline Douglas-Peucker keeps where the walk began, corner or not)."""
    corners = list(corners)
    changed = True
    while changed and len(corners) > (3 if closed else 2):
        changed = False
        inner = range(len(corners)) if closed else range(1, len(corners) - 1)
        for i in inner:
            a, b, c = corners[i - 1], corners[i], corners[(i + 1) % len(corners)]
            chord = c - a
            if abs(chord[0] * (b - a)[1] - chord[1] * (b - a)[0]) <= epsilon * np.hypot(*chord):
                del corners[i]
                changed = True
                break
    return np.array(corners)


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total least squares: a point on the line through `points` (N, 2) and its unit direction."""
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre)
    return centre, vt[0]


def _corner_sine(corners: Sequence[np.ndarray], k: int) -> float:
    """The least sine between the sides that meet at corner k + 1 for their crossing to be trusted:
    nearly parallel sides cross anywhere along a corner that hardly turns, but where the stroke turns
    back on itself (more than 90 degrees) the crossing is the sharp corner's tip."""
    a, b, c = corners[k], corners[(k + 1) % len(corners)], corners[(k + 2) % len(corners)]
    return SHARP_SINE if float(np.dot(b - a, c - b)) < 0 else PARALLEL_SINE


def _on_ink(near: np.ndarray, *corners: np.ndarray) -> bool:
    """Whether the way through the corners (col, row) lies on ink (`near`: `near_ink`)."""
    return bool(ink_at(near, along(np.array(corners))).mean() >= 0.9)


def with_sharp_corners(corners: list[np.ndarray], lines: list, closed: bool, near: np.ndarray,
                        tolerance_px: float) -> list[np.ndarray]:
    """Corners with the sharp ones the skeleton cut off put back. Where a stroke turns sharply its ink
    fills the corner, and the skeleton crosses it short of the tip: two corners joined by a short side,
    where the stroke turns by more than 90 degrees in all (less, and the skeleton keeps close to the
    tip). When the sides on either side of it cross near it, and the way from one corner to that crossing
    and on to the other lies on ink, the corner was that crossing (a drawn chamfer leaves paper there).
    `lines[k]` is side k's fitted line (corner k to corner k + 1); `near` is `near_ink`."""
    corners, lines = list(corners), list(lines)
    limit = CUT_CORNER_SIDE * tolerance_px
    changed = True
    while changed and len(corners) > (3 if closed else 2):
        changed = False
        n = len(corners)
        for k in range(n) if closed else range(1, n - 2):  # side k, with a side before and after it
            i, j = k, (k + 1) % n
            if np.hypot(*(corners[j] - corners[i])) > limit:
                continue
            if float(np.dot(corners[i] - corners[i - 1], corners[(j + 1) % n] - corners[j])) >= 0:
                continue  # the stroke turns by under 90 degrees there: its skeleton hardly cuts the corner
            (p, d), (q, e) = lines[k - 1], lines[(k + 1) % len(lines)]
            tip = intersection(p, p + d, q, q + e, SHARP_SINE)
            if tip is None or max(np.hypot(*(tip - corners[i])), np.hypot(*(tip - corners[j]))) > limit:
                continue
            if not _on_ink(near, corners[i], tip, corners[j]):
                continue
            if j == 0:  # the side that closes the outline: the tip replaces its first corner
                corners[0] = tip
                del corners[i], lines[k]
            else:
                corners[i] = tip
                del corners[j], lines[k]
            changed = True
            break
    return corners


def trace_polyline(polyline: Polyline, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> Polyline | None:
    """The polyline traced on its own stroke of ink: its corners, their number and whether it closes,
    all from the ink; None when the stroke cannot be followed alone (it touches other ink, or the ink
    near the model's polyline is not one stroke).

    The stroke is the connected ink along the model's polyline; its skeleton, walked end to end (or
    round), is simplified (Douglas-Peucker) into corners; each side is then a straight line fitted to
    its middle pixels, each corner the crossing of its two sides, each open end the end of its ink.
    """
    points = np.array([frame.to_px(x, y) for x, y in polyline.points])
    band, reach, _ = search_sizes(ink, frame, tolerance_mm)
    stroke = _stroke_component(ink, points, polyline.closed, reach)
    traced = stroke is not None and _skeleton_path(stroke, 3 * band + 2)
    if not traced:
        return None
    path, closed, beside, total = traced
    if not closed and np.hypot(*(path[0] - path[-1])) <= 3 * band + 2:
        closed = True  # an outline drawn with a small gap where the pen began and ended
    tolerance_px = tolerance_mm * frame.px_per_mm
    epsilon = float(np.clip(0.25 * tolerance_px, 2.0, 6.0))  # above a hand's wobble, below a 30-degree corner
    corners = cv2.approxPolyDP(path.astype(np.float32)[:, None, :], epsilon, closed)[:, 0, :].astype(np.float64)
    corners = _straightened(_without_short_sides(corners, closed, MIN_SIDE * tolerance_px), closed, epsilon)
    if len(corners) < 2 or (closed and len(corners) < 3):
        return None
    # Where each corner lies on the walk, to fit each side to the pixels between two corners.
    at = [int(np.argmin(np.hypot(*(path - c).T))) for c in corners]
    sides = [(at[i], at[i + 1]) for i in range(len(at) - 1)] + ([(at[-1], at[0])] if closed else [])
    margin = band + 2  # the rounded pixels near a corner belong to neither side
    lines = []
    for a, b in sides:
        piece = path[a:b + 1] if a < b else np.concatenate([path[a:], path[:b + 1]])
        inner = piece[margin:len(piece) - margin] if len(piece) > 2 * margin + 2 else piece
        lines.append(_fit_line(inner))
    near = near_ink(ink)
    new = [c.copy() for c in corners]
    for k in range(len(sides) if closed else len(sides) - 1):
        (p, d), (q, e) = lines[k], lines[(k + 1) % len(lines)]
        j = (k + 1) % len(corners)
        crossing = intersection(p, p + d, q, q + e, _corner_sine(corners, k))
        if crossing is None:
            continue
        # A sharp corner's ink fills its tip, and the skeleton turns short of it: further is fine on ink.
        if np.hypot(*(crossing - corners[j])) <= 2 * epsilon + band or (
                np.hypot(*(crossing - corners[j])) <= CUT_CORNER_SIDE * tolerance_px
                and _on_ink(near, corners[j], crossing)):
            new[j] = crossing
    new = with_sharp_corners(new, lines, closed, near, tolerance_px)
    # What the way left beside it must be a sharp corner's spur (near a corner), not another stroke.
    if len(beside):
        far = np.min([np.hypot(*(beside - c).T) for c in new], axis=0) > SPUR_REACH * tolerance_px
        if far.sum() > (1 - TRACE_COVERAGE) * total:
            return None
    if not closed:  # the skeleton stops short of the stroke's ends; the ink along the end sides does not
        for (i, j), end, index in (((0, 1), 0, 0), ((-2, -1), 1, -1)):
            run = ink_run_ends(ink, new[i], new[j], band + 2, band)
            if run:
                new[index] = run[end]
    traced_polyline = Polyline(tuple((round(x, 1), round(y, 1)) for x, y in (frame.to_mm(*q) for q in new)), closed)
    return traced_polyline if not traced_polyline.problems(frame.sheet) else None


def refine_polyline(polyline: Polyline, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> Polyline:
    """The polyline with its points re-measured on the ink, its point count and `closed` kept.

    Each segment is fitted as a line is (`fit_segment`); a corner becomes the crossing of its two
    fitted segments, an open end the end of its segment's ink. A point whose new place is not within
    the matching tolerance of the model's stays where the model put it.
    """
    traced = trace_polyline(polyline, ink, frame, tolerance_mm)
    if traced is not None:
        return traced
    points = [np.array(frame.to_px(x, y)) for x, y in polyline.points]
    n = len(points)
    pairs = [(i, (i + 1) % n) for i in range(n if polyline.closed else n - 1)]
    if any(np.hypot(*(points[j] - points[i])) < 4 for i, j in pairs):
        return polyline
    band, reach, extend = search_sizes(ink, frame, tolerance_mm)
    fitted = [fit_segment(ink, points[i], points[j], reach, band) for i, j in pairs]
    new = list(points)
    for k, (i, j) in enumerate(pairs):  # the corner at j, between segment k and the next
        following = (k + 1) % len(pairs) if polyline.closed else k + 1
        if following < len(pairs) and fitted[k] is not None and fitted[following] is not None:
            corner = intersection(*fitted[k], *fitted[following])
            if corner is not None:
                new[j] = corner
    if not polyline.closed:
        for k, end, index in ((0, 0, 0), (len(pairs) - 1, 1, n - 1)):
            ends = fitted[k] is not None and ink_run_ends(ink, *fitted[k], extend, band)
            if ends:
                new[index] = ends[end]
    limit = tolerance_mm * frame.px_per_mm
    kept = [q if np.hypot(*(q - p)) <= limit else p for p, q in zip(points, new)]
    refined = dataclasses.replace(polyline, points=tuple(
        (round(x, 1), round(y, 1)) for x, y in (frame.to_mm(*q) for q in kept)))
    return refined if not refined.problems(frame.sheet) else polyline


def longest_side(polyline: Polyline) -> float:
    """The length of a polyline's longest side (a closed one's closing side included)."""
    return float(np.hypot(*np.diff(np.array(polyline.path(), float), axis=0).T).max())


ALONE_MIN_SIDE = 3.0  # tolerances: an arrowhead's sides are shorter (`drawn_alone`)


def drawn_alone(ink: Ink | np.ndarray, sheet: Sheet, primitives: Sequence[Primitive]) -> list[bool]:
    """For each primitive, whether it is a polyline drawn as a stroke of its own: traced on the image's
    ink (`trace_polyline`), it gives itself back (no other ink joins it, as a dimension line's
    arrowheads and extension lines join theirs), and a side of it is longer than an arrowhead's."""
    if not any(isinstance(p, Polyline) for p in primitives):
        return [False] * len(primitives)
    ink = as_ink(ink)
    ink, frame = ink.mask, ink.frame(sheet)
    tolerance_mm = tolerance(sheet)
    out = []
    for p in primitives:
        if not isinstance(p, Polyline):
            out.append(False)
            continue
        traced = trace_polyline(p, ink, frame, tolerance_mm)
        out.append(longest_side(p) >= ALONE_MIN_SIDE * tolerance_mm and traced is not None
                   and pair_error(traced, p, sheet) is not None)
    return out


OTHERS_SHARE = 0.3  # a traced stroke that other primitives lie along for more than this share is theirs


def with_bent_lines_traced(primitives: Sequence[Primitive], ink: np.ndarray, frame: Frame,
                           tolerance_mm: float) -> list[Primitive]:
    """The primitives with each line whose ink bends replaced by the polyline the ink shows.

    The model sometimes writes a line from one end of a bent stroke to the other, or along one of its
    sides. Where the line's stroke, traced alone (`trace_polyline`), is an open polyline of three or
    more corners, traced again gives itself back, and no other primitive lies along it (a line along
    a rectangle's side is a repeat, not a bend), that polyline replaces the line.
    """
    if not any(isinstance(p, Line) for p in primitives):
        return list(primitives)
    band = band_width(ink)
    out = list(primitives)
    for i, line in enumerate(primitives):
        if not isinstance(line, Line):
            continue
        traced = trace_polyline(Polyline(((line.x1, line.y1), (line.x2, line.y2)), False), ink, frame, tolerance_mm)
        if traced is None or traced.closed or len(traced.points) < 3:
            continue
        again = trace_polyline(traced, ink, frame, tolerance_mm)
        if again is None or pair_error(again, traced, frame.sheet) is None:
            continue
        others = strokes_mask(ink.shape, frame, [p for k, p in enumerate(out) if k != i], 2 * band + 3)
        if ink_at(others, outline_px(traced, frame)).mean() <= OTHERS_SHARE:
            out[i] = traced
    return out
