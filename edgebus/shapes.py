"""The procedural shape set: seeded, dependency-light (numpy + Pillow) image rendering.

It lives outside `edgebus.ml` because camera nodes use it as their synthetic source at run
time, and the runtime must not import the training layer. `edgebus.ml.datasets` re-exports it.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw


class ShapeSizeError(ValueError):
    """An image size the renderer cannot draw; the message is one line."""


SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "pentagon",
    "hexagon",
    "star",
    "cross",
    "ring",
    "crescent",
    "arrow",
)


def _regular_polygon(n: int, radius: float, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _star(radius: float) -> np.ndarray:
    outer = _regular_polygon(5, radius, -math.pi / 2)
    inner = _regular_polygon(5, radius * 0.42, -math.pi / 2 + math.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _cross(radius: float) -> np.ndarray:
    a, b = radius, radius * 0.33
    return np.array(
        [[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b],
         [-a, -b], [-b, -b]]
    )  # fmt: skip


def _arrow(radius: float) -> np.ndarray:
    a, s, h = radius, radius * 0.22, radius * 0.55
    return np.array([[-a, -s], [0.1 * a, -s], [0.1 * a, -h], [a, 0], [0.1 * a, h], [0.1 * a, s],
                     [-a, s]])  # fmt: skip


def _outline(name: str, radius: float) -> np.ndarray | None:
    """Vertices of a polygonal class centred on the origin; None for the round classes."""
    if name == "square":
        return _regular_polygon(4, radius * 1.15, math.pi / 4)
    if name == "triangle":
        return _regular_polygon(3, radius * 1.2, -math.pi / 2)
    if name == "pentagon":
        return _regular_polygon(5, radius, -math.pi / 2)
    if name == "hexagon":
        return _regular_polygon(6, radius)
    if name == "star":
        return _star(radius * 1.2)
    if name == "cross":
        return _cross(radius)
    if name == "arrow":
        return _arrow(radius * 1.1)
    return None


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    name: str,
    centre: tuple[float, float],
    radius: float,
    angle: float,
    colour: tuple[int, int, int],
    background: tuple[int, int, int],
) -> None:
    cx, cy = centre
    poly = _outline(name, radius)
    if poly is not None:
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        pts = poly @ rot.T + np.array([cx, cy])
        draw.polygon([tuple(p) for p in pts.tolist()], fill=colour)
        return
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    draw.ellipse(box, fill=colour)
    if name == "ring":
        r = radius * 0.55
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=background)
    elif name == "crescent":
        dx, dy = 0.45 * radius * math.cos(angle), 0.45 * radius * math.sin(angle)
        r = radius * 0.85
        draw.ellipse([cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r], fill=background)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random texture: a colour gradient, stripes and low-frequency blotches."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    tint = rng.uniform(-90, 90, size=3).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    freq = rng.uniform(2, 9)
    stripes = np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)))
    coarse = rng.normal(0, 1, size=(4, 4, 3)).astype(np.float32)
    blotch = np.asarray(
        Image.fromarray(
            ((coarse - coarse.min()) / (np.ptp(coarse) + 1e-6) * 255).astype(np.uint8)
        ).resize((size, size), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    img = base + tint * xx[..., None] + rng.uniform(10, 45) * stripes[..., None]
    img = img + (blotch - 128.0) * rng.uniform(0.1, 0.5)
    return np.clip(img, 0, 255)


def render_shape(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, int]:
    """Render image `index` of the procedural set: the same (seed, index, size) always gives
    the same pixels, so a split can be recorded as index ranges."""
    if size < 16:
        raise ShapeSizeError(f"image size: expected at least 16 pixels, got {size}")
    rng = np.random.default_rng([seed, index, size])
    label = int(index % len(SHAPE_CLASSES))
    bg = _background(rng, size)
    image = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    # Clutter first so the object sits on top; thin strokes and dots that are no class.
    for _ in range(int(rng.integers(0, 6))):
        p = rng.uniform(0, size, size=4)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.6:
            draw.line([float(v) for v in p], fill=colour, width=int(rng.integers(1, 3)))
        else:
            r = float(rng.uniform(1, max(1.5, size * 0.06)))
            draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)
    radius = float(rng.uniform(0.12, 0.34) * size)
    margin = radius * 0.8
    centre = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
    angle = float(rng.uniform(0, 2 * math.pi))
    bg_here = bg[int(min(centre[1], size - 1)), int(min(centre[0], size - 1))]
    red, green, blue = (int(c) for c in rng.integers(0, 256, size=3))
    colour = (red, green, blue)
    if float(np.abs(np.asarray(colour, dtype=np.float32) - bg_here).sum()) < 120:
        colour = (255 - red, 255 - green, 255 - blue)
    hole = (int(bg_here[0]), int(bg_here[1]), int(bg_here[2]))
    _draw_shape(draw, SHAPE_CLASSES[label], centre, radius, angle, colour, hole)
    out = np.asarray(image, dtype=np.float32)
    out += rng.normal(0, rng.uniform(2, 22), size=out.shape).astype(np.float32)
    if rng.random() < 0.3:
        out = np.asarray(
            Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).reduce(2).resize((size, size)),
            dtype=np.float32,
        )
    return np.clip(out, 0, 255).astype(np.uint8), label
