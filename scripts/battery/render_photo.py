"""Battery set `photo`: part drawings on paper, photographed with a phone (the battery's own camera model).

    python3 scripts/battery/render_photo.py         # writes testsets/battery/photo/{dev,test}

Each drawing is a part from `parts.py` (seeds 23004xxxx), first drawn either by the battery's hand
renderer (`render_hand.py`) or as CAD output by ezdxf (`render_ezdxf.py`), then photographed by this
pipeline, written independently of cad2program.synth:
- paper: a tinted sheet with fibre texture (smoothed noise at two scales); ink multiplies into it;
- camera pose: a perspective homography that moves each sheet corner by up to 1.2% of the sheet
  (the framing is the sheet, as the contract asks; where a corner moves inwards a sliver of the
  table shows), so no drawn point moves more than about 1.2% of the sheet (tolerance: 2%);
- light: a linear gradient and a soft off-centre hot spot, sometimes a blurred shadow across one side,
  lens vignetting (cos^4-like radial falloff), a colour cast (white balance gains);
- optics and sensor: defocus (Gaussian) or motion blur (a line kernel), signal-dependent noise with
  chroma, then JPEG at quality 55-85.
About 1000 px on the longer side, RGB JPEG.
"""

from __future__ import annotations

import io
import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_parts_module, renderer_main, write_half  # noqa: E402

SET_NAME = "photo"
SEED_BASE = 23004
LONGER_SIDE_PX = 1000


def _smooth_noise(rng: np.random.Generator, shape, cells: int) -> np.ndarray:
    """Noise in [-1, 1] smooth over about shape/cells pixels (bilinear upsampling of a coarse grid)."""
    coarse = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((shape[1], shape[0]), Image.BICUBIC)
    return np.asarray(image)


def photograph(grey: np.ndarray, seed: int) -> bytes:
    """A phone photo of a sheet drawn in `grey` (uint8, 255 = paper): the JPEG bytes of an RGB image of
    the same size."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = grey.shape
    ink = 1.0 - grey.astype(np.float32) / 255.0
    # Paper: tint and fibres.
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.86, 0.98)], np.float32)
    fibres = 0.025 * _smooth_noise(rng, (h, w), 60) + 0.012 * rng.standard_normal((h, w)).astype(np.float32)
    paper = np.clip(0.93 + fibres, 0, 1)[..., None] * tint
    ink_colour = np.array(rng.uniform(0.05, 0.2, 3), np.float32)
    sheet = paper * (1 - ink[..., None]) + ink_colour * ink[..., None]
    # Camera pose: move the sheet's corners a little (perspective + slight rotation).
    jitter = 0.012 * np.array([w, h], np.float32)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-1, 1, (4, 2)).astype(np.float32) * jitter
    table = np.array(rng.uniform(0.15, 0.45, 3), np.float32)
    warped = cv2.warpPerspective(sheet, cv2.getPerspectiveTransform(src, dst), (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(c) for c in table))
    # Light: gradient, hot spot, maybe a shadow, vignetting.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = xx / w - 0.5, yy / h - 0.5
    a = rng.uniform(0, 2 * math.pi)
    light = 1.0 + rng.uniform(0.05, 0.25) * (math.cos(a) * xn + math.sin(a) * yn)
    hx, hy = rng.uniform(-0.3, 0.3, 2)
    light += rng.uniform(0.0, 0.15) * np.exp(-((xn - hx) ** 2 + (yn - hy) ** 2) / 0.08)
    if rng.random() < 0.5:
        b = rng.uniform(0, 2 * math.pi)
        edge = math.cos(b) * xn + math.sin(b) * yn - rng.uniform(0.1, 0.4)
        light *= 1 - rng.uniform(0.15, 0.4) / (1 + np.exp(-edge / 0.04))
    radius2 = (xn ** 2 + yn ** 2) / 0.5
    light *= (1 - rng.uniform(0.1, 0.35) * radius2 ** 1.5)
    gains = np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.85, 1.1)], np.float32)
    image = warped * light[..., None] * gains
    # Optics: defocus or motion blur.
    if rng.random() < 0.6:
        sigma = rng.uniform(0.6, 1.6)
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    else:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
    # Sensor: shot noise grows with the signal, read noise does not, a little chroma noise.
    level = rng.uniform(0.01, 0.035)
    noise = rng.standard_normal(image.shape).astype(np.float32) * (level * np.sqrt(np.clip(image, 0, 1)) + 0.006)
    chroma = cv2.GaussianBlur(rng.standard_normal(image.shape).astype(np.float32), (0, 0), 2) * level * 0.8
    image = np.clip(image + noise + chroma, 0, 1)
    rgb = Image.fromarray((image * 255 + 0.5).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=int(rng.integers(55, 86)))
    return buffer.getvalue()


def draw(seed: int):
    parts = load_parts_module()
    part = parts.make_part(seed)
    rng = random.Random(seed + 3)
    if rng.random() < 0.5:
        from render_hand import draw_part
        grey, source = draw_part(part, rng, LONGER_SIDE_PX), "hand"
    else:
        from dxf_doc import build_part_dxf
        from render_ezdxf import render_doc
        grey, source = render_doc(build_part_dxf(part, rng), part.sheet, LONGER_SIDE_PX), "ezdxf"
    label = part.label("", style="photo", drawn_by=source)
    del label["image"]
    return photograph(grey, seed), label


def main(argv=None) -> int:
    return renderer_main(argv, __doc__.split("\n\n")[0], SET_NAME,
                         lambda folder, seeds, desc: write_half(folder, seeds, draw, desc, extension="jpg"), SEED_BASE)


if __name__ == "__main__":
    sys.exit(main())
