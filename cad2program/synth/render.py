"""Rendering a layout into an image, in one of the drawing styles.

Everything is drawn directly at the target size: strokes with OpenCV's anti-aliased lines (sub-pixel
positions through `shift`), text as Pillow masks, into two ink-coverage layers (outlines and
annotations) that are then laid onto the paper in their colours. Hand-drawn strokes wobble, overshoot
and vary in weight; scans and photos are degraded afterwards. Every distortion is bounded so that
geometry stays well inside the scoring tolerance (2% of the sheet's longer side).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from cad2program.contract.program import Sheet
from cad2program.synth.sketch import Group, Stroke

SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn to 1/16 px
ONE = 1 << SHIFT


@dataclasses.dataclass
class Look:
    """How one drawing is inked: varied per drawing, never changing the truth."""

    style: str  # "clean", "sketch", "scan" or "photo"
    hand: bool  # strokes drawn by hand (wobble, overshoot)
    geom_px: float  # outline width
    anno_px: float  # dimension line width
    geom_rgb: np.ndarray
    anno_rgb: np.ndarray
    paper_rgb: np.ndarray
    pencil: bool  # grainy graphite strokes
    wobble_mm: float
    overshoot_mm: float


def _dark_colour(rng: np.random.Generator, colourful: float) -> np.ndarray:
    if rng.random() >= colourful:
        return np.full(3, rng.uniform(0, 45))
    palette = np.array([[20, 40, 150], [10, 90, 40], [150, 25, 25], [60, 60, 60], [90, 20, 110], [0, 80, 110]])
    return palette[rng.integers(len(palette))] + rng.uniform(-15, 15, 3)


def sample_look(rng: np.random.Generator, style: str, content: str, sheet: Sheet, long_px: int) -> Look:
    """Line weights, inks and paper for a drawing whose strokes are `content` ("clean" or "sketch")."""
    unit = long_px / 512.0
    if content == "clean":
        geom_px = unit * rng.uniform(0.7, 3.0)
        geom_rgb = _dark_colour(rng, 0.25)
        anno_rgb = geom_rgb if rng.random() < 0.5 else _dark_colour(rng, 0.5)
        paper = np.full(3, 255.0) if rng.random() < 0.8 else np.full(3, rng.uniform(246, 255))
        return Look(style, False, geom_px, geom_px * rng.uniform(0.45, 0.7), geom_rgb, anno_rgb, paper,
                    False, 0.0, 0.0)
    pencil = rng.random() < 0.5
    if pencil:
        geom_rgb = np.full(3, rng.uniform(25, 80)) + rng.uniform(-5, 5, 3)
    else:
        geom_rgb = _dark_colour(rng, 0.45)
    anno_rgb = geom_rgb if rng.random() < 0.7 else _dark_colour(rng, 0.5)
    paper = np.array([rng.uniform(240, 255), rng.uniform(238, 253), rng.uniform(228, 250)])
    geom_px = unit * rng.uniform(1.2, 3.0)
    long_mm = sheet.longer_side
    return Look(style, True, geom_px, geom_px * rng.uniform(0.45, 0.75), geom_rgb, anno_rgb, paper, pencil,
                long_mm * rng.uniform(0.0006, 0.002), long_mm * rng.uniform(0.002, 0.006))


class Canvas:
    """Maps sheet mm (y up) onto pixel coordinates and draws ink coverage layers."""

    def __init__(self, sheet: Sheet, width_px: int, height_px: int):
        self.sheet = sheet
        self.width, self.height = width_px, height_px
        self.sx, self.sy = width_px / sheet.width, height_px / sheet.height
        self.layers = {"geom": np.zeros((height_px, width_px), np.uint8),
                       "anno": np.zeros((height_px, width_px), np.uint8)}

    def to_px(self, points: np.ndarray) -> np.ndarray:
        """mm -> OpenCV pixel coordinates (pixel centres at integers, so the grid spans [0, W] mm)."""
        out = np.empty_like(points, dtype=np.float64)
        out[:, 0] = points[:, 0] * self.sx - 0.5
        out[:, 1] = (self.sheet.height - points[:, 1]) * self.sy - 0.5
        return out

    def polyline(self, layer: str, points_px: np.ndarray, closed: bool, width_px: float, strength: float = 1.0):
        thickness = max(1, int(round(width_px)))
        value = int(round(255 * strength * min(1.0, width_px / thickness)))  # a thin line is a faint one
        pts = np.round(points_px * ONE).astype(np.int32)
        cv2.polylines(self.layers[layer], [pts], closed, value, thickness, cv2.LINE_AA, SHIFT)

    def fill(self, layer: str, points_px: np.ndarray, strength: float = 1.0):
        pts = np.round(points_px * ONE).astype(np.int32)
        cv2.fillPoly(self.layers[layer], [pts], int(round(255 * strength)), cv2.LINE_AA, SHIFT)
        cv2.polylines(self.layers[layer], [pts], True, int(round(255 * strength)), 1, cv2.LINE_AA, SHIFT)

    def paste(self, layer: str, mask: np.ndarray, centre_mm: np.ndarray):
        cx, cy = self.to_px(centre_mm[None])[0]
        h, w = mask.shape
        x0, y0 = int(round(cx + 0.5 - w / 2)), int(round(cy + 0.5 - h / 2))
        x1, y1 = x0 + w, y0 + h
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, self.width), min(y1, self.height)
        if cx0 >= cx1 or cy0 >= cy1:
            return
        target = self.layers[layer][cy0:cy1, cx0:cx1]
        np.maximum(target, mask[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], out=target)


# ----------------------------------------------------------------------------------------------
# Hand-drawn strokes
# ----------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, amplitude: float, cycles: float) -> np.ndarray:
    """A gentle random wave along a stroke (t in [0, 1])."""
    out = np.zeros_like(t)
    for _ in range(2):
        out += np.sin(2 * np.pi * (rng.uniform(0.5, 1.0) * cycles * t + rng.random()))
    return out * amplitude / 2


def _resample(points: np.ndarray, step: float) -> np.ndarray:
    seg = np.hypot(*np.diff(points, axis=0).T)
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    count = max(2, int(dist[-1] / step) + 1)
    samples = np.linspace(0.0, dist[-1], count)
    return np.stack([np.interp(samples, dist, points[:, 0]), np.interp(samples, dist, points[:, 1])], axis=1)


def _wobble(rng: np.random.Generator, points: np.ndarray, amplitude: float, cycles: float) -> np.ndarray:
    tangent = np.gradient(points, axis=0)
    norm = np.hypot(tangent[:, 0], tangent[:, 1])[:, None]
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) / np.maximum(norm, 1e-9)
    t = np.linspace(0.0, 1.0, len(points))
    return points + normal * _smooth_noise(rng, t, amplitude, cycles)[:, None]


def hand_strokes(rng: np.random.Generator, stroke: Stroke, look: Look, px_per_mm: float) -> list[np.ndarray]:
    """A stroke as a hand draws it, in mm: straight edges one by one, overshooting their ends a little;
    circles and arcs slightly uneven, a circle closing with a small overlap."""
    amplitude = look.wobble_mm * (0.6 if stroke.layer == "anno" else 1.0)
    step = 3.0 / px_per_mm
    if stroke.curved:
        points = stroke.points
        if stroke.closed:  # start anywhere, overlap the start a little
            points = points[:-1]
            shift = int(rng.integers(len(points)))
            points = np.roll(points, -shift, axis=0)
            overlap = max(1, int(len(points) * rng.uniform(0.0, 0.05)))
            points = np.vstack([points, points[:overlap + 1]])
        points = _resample(points, step)
        return [_wobble(rng, points, amplitude * 1.3, rng.uniform(1.0, 3.0))]
    points = np.vstack([stroke.points, stroke.points[:1]]) if stroke.closed else stroke.points
    out = []
    for a, b in zip(points[:-1], points[1:]):
        length = float(np.hypot(*(b - a)))
        if length < 1e-9:
            continue
        direction = (b - a) / length
        # Outlines overshoot their corners; annotation lines barely (they must not run into the text).
        reach = min(look.overshoot_mm, 0.15 * length) if stroke.layer == "geom" else look.overshoot_mm * 0.12
        a2 = a - direction * reach * rng.uniform(-0.2, 1.0)
        b2 = b + direction * reach * rng.uniform(-0.2, 1.0)
        segment = _resample(np.array([a2, b2]), step)
        out.append(_wobble(rng, segment, amplitude, rng.uniform(0.3, 1.2)))
    return out


# ----------------------------------------------------------------------------------------------
# Drawing a layout
# ----------------------------------------------------------------------------------------------


def draw_layout(rng: np.random.Generator, canvas: Canvas, groups: list[Group], look: Look) -> None:
    px_per_mm = min(canvas.sx, canvas.sy)
    for group in groups:
        for stroke in group.strokes:
            width = look.geom_px if stroke.layer == "geom" else look.anno_px
            if look.hand:
                for part in hand_strokes(rng, stroke, look, px_per_mm):
                    canvas.polyline(stroke.layer, canvas.to_px(part), False, width * rng.uniform(0.8, 1.2),
                                    rng.uniform(0.75, 1.0))
            else:
                canvas.polyline(stroke.layer, canvas.to_px(stroke.points), stroke.closed, width)
        for fill in group.fills:
            canvas.fill("anno", canvas.to_px(fill), rng.uniform(0.8, 1.0) if look.hand else 1.0)
        for label in group.labels:
            canvas.paste("anno", label.mask, label.centre)


def _inked_colours(rng: np.random.Generator, canvas: Canvas, look: Look, paper: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the pixels with ink, and their float32 colours there as (3, n) channel planes, on
    `paper`: one float32 RGB colour (3,) or the colour of every pixel (H * W, 3).

    Ink covers a few percent of a drawing: blending only those pixels gives the very values that blending
    every pixel gives (coverage 0 leaves the paper as it is), at a fraction of the cost."""
    geom, anno = canvas.layers["geom"], canvas.layers["anno"]
    inked = np.flatnonzero(geom | anno)
    alphas = []
    for layer in (geom, anno):
        alpha = layer.ravel()[inked].astype(np.float32)
        alpha *= np.float32(1.0 / 255.0)
        if look.pencil:  # graphite leaves grainy, uneven strokes (drawn for every pixel: same random stream)
            alpha *= rng.uniform(0.7, 1.0, layer.shape).astype(np.float32).ravel()[inked]
        alphas.append(alpha)
    colours = np.empty((3, inked.size), np.float32)
    colours[:] = paper[:, None] if paper.ndim == 1 else paper[inked].T
    for plane, k in zip(colours, range(3)):
        for alpha, colour in zip(alphas, (look.geom_rgb, look.anno_rgb)):
            plane += (np.float32(colour[k]) - plane) * alpha  # float32 scalars: no upcast to float64
    return inked, colours


def compose(rng: np.random.Generator, canvas: Canvas, look: Look, paper: np.ndarray | None = None) -> np.ndarray:
    """Lays the ink layers on the paper: float32 RGB image in 0..255."""
    if paper is None:
        image = np.empty((canvas.height, canvas.width, 3), np.float32)
        image[:] = look.paper_rgb.astype(np.float32)
    else:
        image = np.array(paper, dtype=np.float32)  # a copy: the paper may be a read-only broadcast
    flat = image.reshape(-1, 3)
    inked, colours = _inked_colours(rng, canvas, look, flat)
    flat[inked] = colours.T
    return image


def compose_uint8(rng: np.random.Generator, canvas: Canvas, look: Look) -> np.ndarray:
    """`np.clip(compose(...) + 0.5, 0, 255).astype(np.uint8)` on plain paper, rounding only the inked pixels."""
    paper = look.paper_rgb.astype(np.float32)
    inked, colours = _inked_colours(rng, canvas, look, paper)
    paper_bytes = np.clip(paper + 0.5, 0, 255).astype(np.uint8)
    ink_bytes = np.clip(colours + 0.5, 0, 255).astype(np.uint8)
    planes = []
    for k in range(3):  # contiguous planes merged at the end: faster than writing RGB triples
        plane = np.full(canvas.height * canvas.width, paper_bytes[k], np.uint8)
        plane[inked] = ink_bytes[k]
        planes.append(plane.reshape(canvas.height, canvas.width))
    return cv2.merge(planes)


# ----------------------------------------------------------------------------------------------
# Paper, scans and photos
# ----------------------------------------------------------------------------------------------


def photo_paper(rng: np.random.Generator, canvas: Canvas, look: Look) -> np.ndarray:
    """Squared, lined, dotted or plain notebook paper under the drawing."""
    h, w = canvas.height, canvas.width
    paper = np.broadcast_to(look.paper_rgb.astype(np.float32), (h, w, 3)).copy()
    kind = rng.choice(["grid", "grid", "lined", "dots", "plain"])
    if kind == "plain":
        return paper
    layer = np.zeros((h, w), np.uint8)
    spacing_mm = float(rng.choice([5.0, 5.0, 8.0, 10.0])) if kind != "lined" else float(rng.uniform(7, 9))
    spacing_px = spacing_mm * min(canvas.sx, canvas.sy)
    spacing_px = max(spacing_px, 5.0 * w / 512)  # never so fine that it turns the page grey
    offset = rng.uniform(0, spacing_px, 2)
    xs = np.arange(offset[0], w, spacing_px)
    ys = np.arange(offset[1], h, spacing_px)
    if kind == "dots":
        for y in ys:
            for x in xs:
                cv2.circle(layer, (int(x * ONE), int(y * ONE)), int(0.8 * ONE), 255, -1, cv2.LINE_AA, SHIFT)
    else:
        for y in ys:
            cv2.line(layer, (0, int(y * ONE)), (w * ONE, int(y * ONE)), 255, 1, cv2.LINE_AA, SHIFT)
        if kind == "grid":
            for x in xs:
                cv2.line(layer, (int(x * ONE), 0), (int(x * ONE), h * ONE), 255, 1, cv2.LINE_AA, SHIFT)
    colours = np.array([[120, 170, 220], [140, 200, 170], [170, 170, 170], [200, 150, 150]], np.float32)
    colour = colours[rng.integers(len(colours))]
    alpha = layer.astype(np.float32)[..., None] * (rng.uniform(0.25, 0.55) / 255.0)
    return paper * (1 - alpha) + colour * alpha


def _jpeg(rng: np.random.Generator, image: np.ndarray, low: int, high: int) -> tuple[np.ndarray, bytes]:
    quality = int(rng.integers(low, high + 1))
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(decoded), data.tobytes()


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, colour: bool) -> np.ndarray:
    h, w = shape[:2]
    if colour:
        return rng.normal(0.0, sigma, (h, w, 3)).astype(np.float32)
    return rng.normal(0.0, sigma, (h, w, 1)).astype(np.float32)


def scan(rng: np.random.Generator, image: np.ndarray, look: Look, hand: bool) -> tuple[np.ndarray, bytes]:
    """Flatbed scan: tint, blur, a slight rotation, speckles, noise, JPEG."""
    h, w = image.shape[:2]
    unit = max(h, w) / 512.0
    if rng.random() < 0.4:  # greyscale scanner
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    tint = np.array([rng.uniform(0.93, 1.0), rng.uniform(0.9, 0.99), rng.uniform(0.8, 0.96)], np.float32)
    image = image * tint
    # Rotation about the centre moves points by at most |angle| x half diagonal: < 1.3% of the sheet.
    limit = 0.7 if hand else 1.0
    angle = rng.uniform(-limit, limit)
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    border = tuple(float(v) for v in (255.0 * tint))
    image = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=border)
    sigma = rng.uniform(0.2, 1.2) * unit
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    speckles = int(rng.poisson(rng.uniform(3, 50) * h * w / 512 ** 2))
    for _ in range(speckles):
        centre = (int(rng.uniform(0, w) * ONE), int(rng.uniform(0, h) * ONE))
        radius = int(rng.uniform(0.4, 1.3) * unit * ONE)
        shade = float(rng.uniform(30, 160))
        cv2.circle(image, centre, radius, (shade, shade, shade), -1, cv2.LINE_AA, SHIFT)
    image = image + _noise(rng, image.shape, rng.uniform(2, 10), False)
    contrast = rng.uniform(0.9, 1.1)
    image = (image - 128.0) * contrast + 128.0 + rng.uniform(-8, 8)
    return _jpeg(rng, np.clip(image, 0, 255).astype(np.uint8), 30, 85)


def photo(rng: np.random.Generator, image: np.ndarray, look: Look) -> tuple[np.ndarray, bytes]:
    """Phone photo of paper: mild perspective, uneven light and shadow, colour cast, blur, noise, JPEG."""
    h, w = image.shape[:2]
    unit = max(h, w) / 512.0
    # Each corner moves by at most 1.2% of the longer side: points move less than that.
    reach = rng.uniform(0.003, 0.012) * max(h, w)
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    target = source + rng.uniform(-reach, reach, (4, 2)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(source, target)
    table = tuple(float(v) for v in rng.uniform(40, 140) * np.array([1.0, 0.9, 0.8]))
    image = cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=table)
    # Light: a gradient, a vignette, sometimes a soft shadow across the page.
    gy, gx = np.mgrid[0:1:16j, 0:1:16j].astype(np.float32)
    light = 1.0 + rng.uniform(-0.35, 0.35) * (gx - 0.5) + rng.uniform(-0.35, 0.35) * (gy - 0.5)
    light -= rng.uniform(0.0, 0.4) * ((gx - 0.5) ** 2 + (gy - 0.5) ** 2)
    if rng.random() < 0.5:
        direction = rng.uniform(0, 2 * np.pi)
        along = (gx - 0.5) * np.cos(direction) + (gy - 0.5) * np.sin(direction)
        edge = rng.uniform(-0.3, 0.3)
        light *= 1.0 - rng.uniform(0.12, 0.45) / (1.0 + np.exp(-(along - edge) / rng.uniform(0.03, 0.1)))
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    cast = np.array([rng.uniform(0.92, 1.06), rng.uniform(0.94, 1.04), rng.uniform(0.85, 1.05)], np.float32)
    image = image * light * cast * rng.uniform(0.8, 1.05)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.35, 1.5) * unit)
    if rng.random() < 0.25:  # a shaking hand: motion blur along one direction
        image = _motion_blur(rng, image, rng.uniform(1.5, 4.0) * unit)
    if rng.random() < 0.3:  # phone processing: a tone curve that crushes the greys
        image = 255.0 * (np.clip(image, 0, 255) / 255.0) ** rng.uniform(0.7, 1.5)
    image = image + _noise(rng, image.shape, rng.uniform(2, 12), True)
    return _jpeg(rng, np.clip(image, 0, 255).astype(np.uint8), 35, 90)


def _motion_blur(rng: np.random.Generator, image: np.ndarray, length_px: float) -> np.ndarray:
    """Blur along a random direction over `length_px` pixels."""
    size = max(3, int(round(length_px)) | 1)
    kernel = np.zeros((size, size), np.float32)
    angle = rng.uniform(0, np.pi)
    c = (size - 1) / 2
    for t in np.linspace(-c, c, 4 * size):
        kernel[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
    return cv2.filter2D(image, -1, kernel / kernel.sum())


def render(rng: np.random.Generator, sheet: Sheet, size: tuple[int, int], groups: list[Group],
           look: Look) -> tuple[np.ndarray, bytes | None]:
    """The image (uint8 RGB) and, for scans and photos, the JPEG bytes it was decoded from."""
    canvas = Canvas(sheet, *size)
    draw_layout(rng, canvas, groups, look)
    if look.style == "photo":
        image = compose(rng, canvas, look, photo_paper(rng, canvas, look))
        return photo(rng, image, look)
    if look.hand and look.style != "clean":
        paper = np.broadcast_to(look.paper_rgb.astype(np.float32), (canvas.height, canvas.width, 3))
        grain = _noise(rng, paper.shape, rng.uniform(0.0, 3.0), False)
        image = compose(rng, canvas, look, paper + grain)
    elif look.style == "scan":
        image = compose(rng, canvas, look)
    else:  # clean on plain paper: straight to the uint8 image
        return compose_uint8(rng, canvas, look), None
    if look.style == "scan":
        return scan(rng, image, look, look.hand)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), None
